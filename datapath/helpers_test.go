package datapath

import (
	"net"
	"os"
	"testing"

	"github.com/skiffnet/skiff/datapath/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// newTestNS makes a netns named sk + prefix + random (max 15 chars), deleted at cleanup.
func newTestNS(t testing.TB, prefix string) *netns.NS {
	t.Helper()
	name := "skdp" + prefix + randSuffix(4)
	ns, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	return ns
}

// newTestDatapath runs New inside ns (a fresh one if nil) with a private pin dir.
func newTestDatapath(t testing.TB, ns *netns.NS, cfg Config) *Datapath {
	t.Helper()
	if ns == nil {
		ns = newTestNS(t, "n")
	}
	if cfg.PinDir == "" {
		cfg.PinDir = testPinDir(t)
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "node-a"
	}
	var d *Datapath
	if err := ns.Do(func() error {
		var err error
		d, err = New(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if keepPins() {
			t.Logf("SKIFF_DP_KEEP_PINS: maps left pinned in %s", cfg.PinDir)
			d.Close()
			return
		}
		d.Remove()
	})
	return d
}

type svcPort struct {
	name     string
	port     int32
	target   int32
	proto    corev1.Protocol
	nodePort int32
}

func makeService(ns, name, clusterIP string, ports ...svcPort) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, Type: corev1.ServiceTypeClusterIP},
	}
	for _, p := range ports {
		if p.proto == "" {
			p.proto = corev1.ProtocolTCP
		}
		if p.nodePort != 0 {
			svc.Spec.Type = corev1.ServiceTypeNodePort
		}
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: p.name, Port: p.port, Protocol: p.proto, NodePort: p.nodePort,
			TargetPort: intstr.FromInt32(p.target),
		})
	}
	return svc
}

type ep struct {
	addr        string
	node        string
	notReady    bool
	terminating bool
}

func makeSlice(ns, svc, sliceName string, ports []svcPort, eps ...ep) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: sliceName, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range ports {
		name, port, proto := p.name, p.target, p.proto
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		sl.Ports = append(sl.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
	}
	for _, e := range eps {
		ready := !e.notReady
		serving := ready || e.terminating
		term := e.terminating
		x := discoveryv1.Endpoint{
			Addresses:  []string{e.addr},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &term},
		}
		if e.node != "" {
			n := e.node
			x.NodeName = &n
		}
		sl.Endpoints = append(sl.Endpoints, x)
	}
	return sl
}

func ip4(s string) net.IP { return net.ParseIP(s).To4() }

// keepPins leaves a test's pinned maps behind for `skiff datapath ... --pin-dir` by hand.
func keepPins() bool { return os.Getenv("SKIFF_DP_KEEP_PINS") == "1" }
