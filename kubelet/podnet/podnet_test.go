package podnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

func rnd() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Two pods on one node reach each other and the node through the node's routing table;
// Setup is idempotent and Teardown leaves nothing behind.
func TestPodNetworking(t *testing.T) {
	privtest.Require(t, privtest.Root)
	node, err := netns.Create("skpn" + rnd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Delete() })
	dir := t.TempDir()
	m, err := New(Config{StateDir: dir, HostNS: node, MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPodCIDR("10.244.9.0/24"); err != nil {
		t.Fatal(err)
	}
	uidA, uidB := "uid-a-"+rnd(), "uid-b-"+rnd()
	nameA, nameB := "a-"+rnd(), "b-"+rnd()
	a, err := m.Setup("default", nameA, uidA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown("default", nameA, uidA); netns.Delete(NetNSName(uidA)) })
	b, err := m.Setup("default", nameB, uidB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(NetNSName(uidB)) })
	if a.IP == b.IP {
		t.Fatal("same IP twice")
	}
	// Idempotent.
	a2, err := m.Setup("default", nameA, uidA)
	if err != nil || a2.IP != a.IP {
		t.Fatalf("second Setup changed IP %s -> %s", a.IP, a2.IP)
	}
	nsA, _ := netns.Open(a.NetNS)
	nsB, _ := netns.Open(b.NetNS)
	defer nsA.Close()
	defer nsB.Close()

	// Listen in pod B; connect from pod A and from the node.
	var ln net.Listener
	if err := nsB.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", b.IP.String()+":7777")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}
	}()
	try := func(from *netns.NS, what string) {
		t.Helper()
		var c net.Conn
		err := from.Do(func() error {
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp", b.IP.String()+":7777")
			return err
		})
		if err != nil {
			t.Fatalf("%s -> pod B: %v", what, err)
		}
		defer c.Close()
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("%s -> pod B echo: %q %v", what, buf, err)
		}
	}
	try(nsA, "pod A")
	try(node, "node")

	// MTU applied on both ends.
	h, _ := node.Netlink()
	defer h.Close()
	l, err := h.LinkByName(a.HostVeth)
	if err != nil || l.Attrs().MTU != 1450 {
		t.Fatalf("host veth %s: %v mtu %d", a.HostVeth, err, l.Attrs().MTU)
	}

	// A new manager over the same state (agent restart) keeps the addresses.
	m2, _ := New(Config{StateDir: dir, HostNS: node})
	m2.SetPodCIDR("10.244.9.0/24")
	c, err := m2.Setup("default", "c-"+rnd(), "uid-c-"+rnd())
	if err != nil {
		t.Fatal(err)
	}
	if c.IP == a.IP || c.IP == b.IP {
		t.Fatalf("restarted manager reused %s", c.IP)
	}
	for _, p := range []struct{ ns, name, uid string }{{"default", nameB, uidB}} {
		if err := m2.Teardown(p.ns, p.name, p.uid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(netns.Dir + "/" + b.NetNS); !os.IsNotExist(err) {
		t.Fatalf("pod netns left behind: %v", err)
	}
	if _, err := h.LinkByName(b.HostVeth); err == nil {
		t.Fatal("host veth left behind")
	}
	if _, ok := m2.IPAM().Lookup(owner("default", nameB, uidB)); ok {
		t.Fatal("address not released")
	}
	for uid, key := range m2.Owners() {
		m2.ReleaseOwner(uid, key)
	}
}
