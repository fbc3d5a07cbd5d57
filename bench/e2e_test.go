package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

// TestE2EBenchSmoke is `skiff bench datapath --services 1,100 --duration 1s --runs 1` through the
// Go API: every mode must first prove that the measured service's traffic reaches its own
// backends (each server reports its index and port) and then produce figures. Nothing about
// the figures' size is asserted.
func TestE2EBenchSmoke(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF, privtest.Cgroup2)
	var progress bytes.Buffer
	rep, err := Run(Config{
		Services:     []int{1, 100},
		Backends:     4,
		Duration:     time.Second,
		Runs:         1,
		CgroupRoot:   privtest.Cgroup2Root,
		CgroupPrefix: "skiff-test-",
		PinPrefix:    "/sys/fs/bpf/skiff-test-",
		Progress:     &progress,
		Ctx:          t.Context(),
	})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range AllModes {
		for _, n := range []int{1, 100} {
			r := rep.Find(mode, n, Last)
			if r == nil {
				t.Errorf("%s at N=%d: no result", mode, n)
				continue
			}
			if r.Error != "" {
				t.Errorf("%s at N=%d: %s", mode, n, r.Error)
				continue
			}
			for _, metric := range []string{"rr_rate", "crr_rate", "udp_rate", "stream_gbps"} {
				if v, ok := r.Get(metric); !ok || v <= 0 {
					t.Errorf("%s at N=%d: no %s traffic", mode, n, metric)
				}
			}
		}
	}
	if r := rep.Find(ModeIptables, 100, First); r == nil || r.Error != "" {
		t.Errorf("iptables with the measured service first in the chain: %+v", r)
	}
	dir := t.TempDir()
	if err := rep.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.md", "report.json", "rr_latency_p50.png", "crr_rate.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("report file %s missing or empty: %v", f, err)
		}
	}
}

// TestE2EBenchControlPlane runs `skiff bench controlplane` small: a real API server, the
// scheduler and two simulated datapath nodes must all do their part (no figures asserted).
func TestE2EBenchControlPlane(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	out, err := RunControlPlane(t.Context(), ControlPlaneConfig{Objects: 20, Pods: 10, Nodes: 2, Changes: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out)
	for _, want := range []string{"create ConfigMap", "schedule 10 pods", "network programming: Service+EndpointSlice write to maps on all 2 nodes",
		"network programming: endpoint added to an EndpointSlice, to maps on all 2 nodes"} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestE2EIptablesUntimedLoad: the rules LoadUntimed puts in (used to measure iptables-nft's
// packet path when kube-proxy's own --noflush load does not finish) are exactly the ones a
// finished FullSync leaves.
func TestE2EIptablesUntimedLoad(t *testing.T) {
	privtest.Require(t, privtest.Root)
	topo, err := NewTopology("skbt", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	env := &Env{Topo: topo, IptablesBackend: "nft", Ctx: t.Context()}
	set, _ := NewServiceSet(50, 3)
	m := &iptablesMode{name: ModeIptables}
	if err := m.Setup(env, set.N, set.B); err != nil {
		t.Fatal(err)
	}
	save := func() string {
		out, err := runIn(env, nil, m.save)
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if err := m.FullSync(set); err != nil {
		t.Fatal(err)
	}
	want := save()
	if err := m.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadUntimed(set); err != nil {
		t.Fatal(err)
	}
	if got := save(); got != want {
		t.Errorf("rules after LoadUntimed differ from a FullSync's:\n got:\n%s\nwant:\n%s", got, want)
	}
}
