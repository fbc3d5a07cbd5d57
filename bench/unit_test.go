package bench

import (
	"strings"
	"testing"
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
