package bench

import (
	"strings"
	"testing"
	"time"
)

func TestCheckIdentities(t *testing.T) {
	set, _ := NewServiceSet(5, 3)
	good := []Identity{{0, PortFirstTCP}, {1, PortFirstTCP}, {2, -PortFirstUDP}, {0, -PortFirstUDP}}
	if err := checkIdentities(good, set, First, 2, true); err != nil {
		t.Errorf("good answers refused: %v", err)
	}
	for name, c := range map[string]struct {
		seen []Identity
		want string
	}{
		"wrong service": {[]Identity{{0, PortLastTCP}, {1, PortFirstTCP}, {2, -PortFirstUDP}, {0, -PortFirstUDP}}, "wrong service"},
		"unknown pod":   {[]Identity{{7, PortFirstTCP}, {1, PortFirstTCP}, {2, -PortFirstUDP}, {0, -PortFirstUDP}}, "not one of"},
		"one backend":   {[]Identity{{1, PortFirstTCP}, {1, PortFirstTCP}, {2, -PortFirstUDP}, {0, -PortFirstUDP}}, "not balanced"},
		"missing":       {[]Identity{{1, PortFirstTCP}}, "answers"},
	} {
		err := checkIdentities(c.seen, set, First, 2, true)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

func TestServiceSetMeasured(t *testing.T) {
	set, err := NewServiceSet(10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if tcp, udp := set.Ports(First); tcp != PortFirstTCP || udp != PortFirstUDP {
		t.Errorf("first ports %d/%d", tcp, udp)
	}
	if len(set.Services[0].Spec.Ports) != 2 || len(set.Services[9].Spec.Ports) != 2 || len(set.Services[5].Spec.Ports) != 1 {
		t.Errorf("only the measured services carry a UDP port")
	}
	if got := set.Slices[9].Endpoints[1].Addresses[0]; got != PodIP(1).String() {
		t.Errorf("measured service endpoint %s, want pod %s", got, PodIP(1))
	}
	svc, slice := set.Updated(5, true)
	if len(slice.Endpoints) != 3 || svc.Name != set.Services[5].Name {
		t.Errorf("update adds one endpoint: %d", len(slice.Endpoints))
	}
	for _, bad := range [][2]int{{0, 10}, {10, 0}, {10, 251}} {
		if _, err := NewServiceSet(bad[0], bad[1]); err == nil {
			t.Errorf("NewServiceSet(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

func TestStatMedian(t *testing.T) {
	r := &Result{}
	for _, v := range []float64{5, 1, 3} {
		r.add("x", v)
	}
	if s := r.Metrics["x"]; s.Median != 3 || s.Min != 1 || s.Max != 5 {
		t.Errorf("median/min/max %+v", s)
	}
	r.add("x", 4)
	if s := r.Metrics["x"]; s.Median != 3.5 {
		t.Errorf("even median %v", s.Median)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Modes: []string{"ipvs"}}, "--modes"},
		{Config{Services: []int{0}}, "--services"},
		{Config{Backends: 300}, "--backends"},
		{Config{Duration: 1}, "--duration"},
		{Config{IptablesBackend: "xt"}, "--iptables-backend"},
	} {
		err := c.cfg.defaults()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.want)
		}
	}
}

func TestDefaultModes(t *testing.T) {
	c := Config{}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Modes, ",") != strings.Join(AllModes, ",") {
		t.Errorf("default modes %v, want %v", c.Modes, AllModes)
	}
	c = Config{IptablesBackend: "legacy"}
	c.defaults()
	for _, m := range c.Modes {
		if m == ModeIptablesLegacy {
			t.Errorf("with --iptables-backend legacy the iptables mode is legacy already: %v", c.Modes)
		}
	}
	if c.RuleTimeout != DefaultCmdTimeout {
		t.Errorf("rule timeout %v", c.RuleTimeout)
	}
	if err := (&Config{RuleTimeout: time.Millisecond}).defaults(); err == nil || !strings.Contains(err.Error(), "--rule-timeout") {
		t.Errorf("short --rule-timeout: %v", err)
	}
}

// fakeMode fails its updates with errUpdate.
type fakeMode struct {
	directMode
	errUpdate, errPartial error
	updates, partials     int
}

func (f *fakeMode) Update(*ServiceSet, int, *svcState) error { f.updates++; return f.errUpdate }
func (f *fakeMode) PartialUpdate(*ServiceSet, int, *svcState) error {
	f.partials++
	return f.errPartial
}

func TestTimeUpdatesDNF(t *testing.T) {
	set, _ := NewServiceSet(10, 2)
	built := len(set.Slices[set.UpdateTarget()].Endpoints)
	m := &fakeMode{errUpdate: &DNFError{Cmd: "iptables-nft-restore", Timeout: time.Minute}}
	r := &Result{}
	if err := timeUpdates(m, set, r, false, ""); err != nil {
		t.Fatal(err)
	}
	if m.updates != 1 || m.partials != 2 {
		t.Errorf("after a whole-table update did not finish: %d more updates, %d partial ones; want 1 and 2", m.updates, m.partials)
	}
	if r.DNF("sync_update_ms") != "1m0s" || r.Metrics["sync_update_partial_ms"] == nil || len(r.Metrics["sync_update_partial_ms"].Runs) != 2 {
		t.Errorf("result %+v %+v", r.Unfinished, r.Metrics)
	}
	if got := len(set.Slices[set.UpdateTarget()].Endpoints); got != built {
		t.Errorf("set left with %d endpoints in the updated service, want %d as built", got, built)
	}
	m = &fakeMode{}
	r = &Result{}
	timeUpdates(m, set, r, true, "")
	if m.updates != 1 || m.partials != 1 || len(set.Slices[set.UpdateTarget()].Endpoints) != built {
		t.Errorf("slow: %d updates, %d partial, want one each and the set as built", m.updates, m.partials)
	}
}

func TestTimeUpdatesAfterFullDNF(t *testing.T) {
	set, _ := NewServiceSet(10, 2)
	m := &fakeMode{}
	r := &Result{}
	if err := timeUpdates(m, set, r, true, "5m0s"); err != nil {
		t.Fatal(err)
	}
	if m.updates != 0 || m.partials != 2 || r.DNF("sync_update_ms") != "5m0s" || r.UpdateNote == "" {
		t.Errorf("after the full sync did not finish: %d whole-table updates (want 0), %d partial (want 2), %+v", m.updates, m.partials, r)
	}
}

func TestReportDNF(t *testing.T) {
	rep := &Report{}
	rep.Config.IptablesBackend = "nft"
	r1 := &Result{Mode: ModeIptables, Position: Last, N: 1000, B: 10}
	r1.add("sync_full_ms", 9000)
	r2 := &Result{Mode: ModeIptables, Position: Last, N: 10000, B: 10, Error: "full sync of 10000 services: iptables-nft-restore did not finish in 5m0s (killed)"}
	r2.unfinished("sync_full_ms", 5*time.Minute)
	sock := &Result{Mode: ModeEBPFSock, Position: Last, N: 10000, B: 10}
	sock.add("crr_rate", 3000)
	sock.add("sync_full_ms", 500)
	leg := &Result{Mode: ModeIptablesLegacy, Position: Last, N: 10000, B: 10}
	leg.add("crr_rate", 1000)
	leg.add("sync_full_ms", 20000)
	rep.Results = []*Result{r1, r2, sock, leg}
	md := rep.Markdown(nil)
	for _, want := range []string{
		"| iptables (svc last) | 9000 | did not finish in 5m0s |",
		"iptables at N=10000: sync_full_ms did not finish in 5m0s and was killed (the same mode took N=1000 9000 ms)",
		"3000/s vs iptables-legacy 1000/s = 3.00×",
		"not compared: iptables: its full sync did not finish in 5m0s",
		"500 ms (iptables did not finish in 5m0s, iptables-legacy 20000 ms)",
		"| ebpf-sock | – | 3000 3.00×l |", // the new-connection table's ratio to iptables-legacy
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
