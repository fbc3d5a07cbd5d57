package datapath

import (
	"testing"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

func TestE2EGCConntrackDeletesExpired(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	d := newTestDatapath(t, nil, Config{})
	now := monotonicNow()
	live := ctKey{Saddr: [4]byte{10, 0, 0, 1}, Daddr: [4]byte{10, 96, 0, 1}, Sport: htons(1000), Dport: htons(80), Proto: 6}
	dead := live
	dead.Sport = htons(1001)
	if err := d.objs.conntrack.Put(live, ctVal{Expires: now + 60e9}); err != nil {
		t.Fatal(err)
	}
	if err := d.objs.conntrack.Put(dead, ctVal{Expires: now - 1}); err != nil {
		t.Fatal(err)
	}
	sk := snatKey{BackendAddr: [4]byte{10, 244, 0, 1}, Proto: 6}
	if err := d.objs.snat.Put(sk, snatVal{Expires: now - 1}); err != nil {
		t.Fatal(err)
	}
	n, err := d.GCConntrack()
	if err != nil || n != 2 {
		t.Fatalf("gc deleted %d (%v), want 2", n, err)
	}
	var v ctVal
	if err := d.objs.conntrack.Lookup(live, &v); err != nil {
		t.Fatalf("live entry gone: %v", err)
	}
	cs, err := d.Maps().Conntrack()
	if err != nil || len(cs) != 1 || cs[0].Src != "10.0.0.1:1000" {
		t.Fatalf("conntrack dump: %+v %v", cs, err)
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{ServiceCIDR: "10.96.0.0"}, "ServiceCIDR"},
		{Config{NodePortRange: "32767-30000"}, "NodePortRange"},
		{Config{CgroupPath: privtest.Cgroup2Root}, "CgroupPath"},
		{Config{PinDir: "relative"}, "PinDir"},
	} {
		_, _, _, err := c.cfg.withDefaults()
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.cfg, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"30000-32767", "1-65535", "", "-", "5-4", "a-b", " 1 - 2 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pr, err := parsePortRange(s)
		if err == nil && (pr.min < 1 || pr.max > 65535 || pr.min > pr.max) {
			t.Fatalf("%q accepted as %+v", s, pr)
		}
	})
}
