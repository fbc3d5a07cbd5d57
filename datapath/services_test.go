package datapath

import (
	"net"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func testTranslator(t *testing.T) *translator {
	c, pr, _, err := (&Config{NodeIPs: []net.IP{ip4("192.168.9.1")}, NodeName: "node-a"}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &translator{cfg: c, nodePort: pr}
}

func groupsString(gs []groupSpec) string {
	var parts []string
	for _, g := range gs {
		var fs, bs []string
		for _, f := range g.frontends {
			fs = append(fs, frontendString(f))
		}
		for _, b := range g.backends {
			bs = append(bs, addrPort(b.Addr, b.Port))
		}
		parts = append(parts, g.key.String()+" fe=["+strings.Join(fs, " ")+"] be=["+strings.Join(bs, " ")+"]")
	}
	return strings.Join(parts, "\n")
}

func TestDesired(t *testing.T) {
	tr := testTranslator(t)
	ports := []svcPort{{name: "http", port: 80, target: 8080, nodePort: 30080}}
	slice := makeSlice("ns", "s", "s-1", ports, ep{addr: "10.244.0.1", node: "node-a"}, ep{addr: "10.244.0.2", node: "node-b"})

	local := makeService("ns", "s", "10.96.0.5", ports...)
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	local.Spec.ExternalIPs = []string{"203.0.113.7"}
	gs, err := tr.desired(local, []*discoveryv1.EndpointSlice{slice})
	if err != nil {
		t.Fatal(err)
	}
	want := "ns/s:http/TCP (local) fe=[192.168.9.1:30080/TCP (external) 203.0.113.7:80/TCP (external)] be=[10.244.0.1:8080]\n" +
		"ns/s:http/TCP fe=[10.96.0.5:80/TCP (internal) 203.0.113.7:80/TCP (internal) 192.168.9.1:30080/TCP (internal)] be=[10.244.0.1:8080 10.244.0.2:8080]"
	if got := groupsString(gs); got != want {
		t.Fatalf("externalTrafficPolicy=Local:\n got %s\nwant %s", got, want)
	}

	headless := makeService("ns", "s", "None", svcPort{name: "http", port: 80, target: 8080})
	if gs, err := tr.desired(headless, []*discoveryv1.EndpointSlice{slice}); err != nil || len(gs) != 0 {
		t.Fatalf("headless: %v %v", groupsString(gs), err)
	}
	ext := makeService("ns", "s", "", svcPort{name: "http", port: 80})
	ext.Spec.Type = corev1.ServiceTypeExternalName
	if gs, err := tr.desired(ext, nil); err != nil || len(gs) != 0 {
		t.Fatalf("ExternalName: %v %v", groupsString(gs), err)
	}
	sctp := makeService("ns", "s", "10.96.0.6", svcPort{name: "x", port: 9, proto: corev1.ProtocolSCTP})
	if gs, err := tr.desired(sctp, nil); err != nil || len(gs) != 0 {
		t.Fatalf("SCTP: %v %v", groupsString(gs), err)
	}
	// A slice of another Service, or with an unknown port name, adds nothing.
	other := makeSlice("ns", "t", "t-1", ports, ep{addr: "10.244.0.9"})
	wrongPort := makeSlice("ns", "s", "s-2", []svcPort{{name: "metrics", port: 9, target: 9090}}, ep{addr: "10.244.0.8"})
	plain := makeService("ns", "s", "10.96.0.5", svcPort{name: "http", port: 80, target: 8080})
	gs, _ = tr.desired(plain, []*discoveryv1.EndpointSlice{other, wrongPort})
	if len(gs) != 1 || len(gs[0].backends) != 0 {
		t.Fatalf("foreign slices leaked in: %s", groupsString(gs))
	}
	for _, bad := range []func(*corev1.Service){
		func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"nope"} },
		func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"1.2.3"} },
		func(s *corev1.Service) { s.Spec.Ports[0].Port = 70000 },
		func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 1 },
	} {
		s := makeService("ns", "s", "10.96.0.5", ports...)
		bad(s)
		if _, err := tr.desired(s, nil); err == nil || !strings.Contains(err.Error(), "spec.") {
			t.Errorf("bad service accepted or error without field: %v", err)
		}
	}
}
