package datapath

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func frontendsOf(t testing.TB, d *Datapath) map[string]Frontend {
	t.Helper()
	fs, err := d.Maps().Frontends()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Frontend{}
	for _, f := range fs {
		out[f.Address+"/"+f.Protocol+"/"+f.Scope] = f
	}
	return out
}

func TestE2EUpsertDeleteAndSync(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	d := newTestDatapath(t, nil, Config{NodeIPs: []net.IP{ip4("192.168.7.1")}})
	ports := []svcPort{{name: "http", port: 80, target: 8080, nodePort: 30001}}
	svc := makeService("ns1", "a", "10.96.1.1", ports...)
	sl := makeSlice("ns1", "a", "a-1", ports, ep{addr: "10.244.0.1", node: "node-a"}, ep{addr: "10.244.0.2"},
		ep{addr: "10.244.0.3", notReady: true})
	if err := d.UpsertService(svc, []*discoveryv1.EndpointSlice{sl}); err != nil {
		t.Fatal(err)
	}
	fs := frontendsOf(t, d)
	for _, k := range []string{"10.96.1.1:80/TCP/internal", "192.168.7.1:30001/TCP/internal", "192.168.7.1:30001/TCP/external"} {
		f, ok := fs[k]
		if !ok {
			t.Fatalf("frontend %s missing: %v", k, fs)
		}
		if strings.Join(f.Backends, ",") != "10.244.0.1:8080,10.244.0.2:8080" || f.Count != 2 {
			t.Fatalf("%s backends %v count %d", k, f.Backends, f.Count)
		}
	}
	// Terminating but serving endpoints are the fallback when none is ready.
	sl2 := makeSlice("ns1", "a", "a-1", ports, ep{addr: "10.244.0.9", notReady: true, terminating: true}, ep{addr: "10.244.0.8", notReady: true})
	if err := d.UpsertService(svc, []*discoveryv1.EndpointSlice{sl2}); err != nil {
		t.Fatal(err)
	}
	if f := frontendsOf(t, d)["10.96.1.1:80/TCP/internal"]; strings.Join(f.Backends, ",") != "10.244.0.9:8080" {
		t.Fatalf("fallback backends %v", f.Backends)
	}
	bs, _ := d.Maps().Backends()
	if len(bs) != 1 {
		t.Fatalf("unreferenced backends left: %v", bs)
	}
	// Bad input: an error naming the field, nothing changed.
	bad := svc.DeepCopy()
	bad.Spec.ClusterIPs = []string{"10.96.1.999"}
	if err := d.UpsertService(bad, nil); err == nil || !strings.Contains(err.Error(), "spec.clusterIPs[0]") {
		t.Fatalf("bad clusterIP: %v", err)
	}
	bad = svc.DeepCopy()
	bad.Spec.Ports[0].NodePort = 80
	if err := d.UpsertService(bad, nil); err == nil || !strings.Contains(err.Error(), "nodePort") {
		t.Fatalf("bad nodePort: %v", err)
	}
	if f := frontendsOf(t, d)["10.96.1.1:80/TCP/internal"]; f.Count != 1 {
		t.Fatalf("bad input changed the maps: %+v", f)
	}
	// Sync with another Service removes a and every entry it had.
	other := makeService("ns1", "b", "10.96.1.2", svcPort{name: "", port: 53, target: 53, proto: corev1.ProtocolUDP})
	osl := makeSlice("ns1", "b", "b-1", []svcPort{{name: "", port: 53, target: 53, proto: corev1.ProtocolUDP}}, ep{addr: "10.244.0.5"})
	if err := d.Sync([]*corev1.Service{other}, []*discoveryv1.EndpointSlice{osl}); err != nil {
		t.Fatal(err)
	}
	fs = frontendsOf(t, d)
	if len(fs) != 1 || fs["10.96.1.2:53/UDP/internal"].Count != 1 {
		t.Fatalf("after sync: %v", fs)
	}
	if err := d.DeleteService("ns1", "b"); err != nil {
		t.Fatal(err)
	}
	if fs := frontendsOf(t, d); len(fs) != 0 {
		t.Fatalf("after delete: %v", fs)
	}
	for _, m := range []string{"maglev", "backends", "counters"} {
		var keys []uint32
		switch m {
		case "maglev":
			keys, _ = keysU32(d.objs.maglev)
		case "backends":
			keys, _ = keysU32(d.objs.backends)
		case "counters":
			keys, _ = keysU32(d.objs.counters)
		}
		if len(keys) != 0 {
			t.Errorf("%s still has %v", m, keys)
		}
	}
}

func TestE2ESyncRemovesEntriesLeftByPreviousAgent(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	ns := newTestNS(t, "s")
	pin := testPinDir(t)
	d := newTestDatapath(t, ns, Config{PinDir: pin})
	ports := []svcPort{{name: "http", port: 80, target: 8080}}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("s%d", i)
		if err := d.UpsertService(makeService("default", name, fmt.Sprintf("10.96.2.%d", i+1), ports...),
			[]*discoveryv1.EndpointSlice{makeSlice("default", name, name+"-1", ports, ep{addr: fmt.Sprintf("10.244.2.%d", i+1)})}); err != nil {
			t.Fatal(err)
		}
	}
	before := frontendsOf(t, d)["10.96.2.1:80/TCP/internal"]
	d.Close()
	// The new agent only knows s0 (with the same backend) and s1's successor.
	d2 := newTestDatapath(t, ns, Config{PinDir: pin})
	keep := makeService("default", "s0", "10.96.2.1", ports...)
	sl := makeSlice("default", "s0", "s0-1", ports, ep{addr: "10.244.2.1"})
	if err := d2.Sync([]*corev1.Service{keep}, []*discoveryv1.EndpointSlice{sl}); err != nil {
		t.Fatal(err)
	}
	fs := frontendsOf(t, d2)
	if len(fs) != 1 {
		t.Fatalf("stale frontends survived: %v", fs)
	}
	if got := fs["10.96.2.1:80/TCP/internal"]; got.ID != before.ID {
		t.Errorf("adopted service id changed %d -> %d", before.ID, got.ID)
	}
	if bs, _ := d2.Maps().Backends(); len(bs) != 1 {
		t.Errorf("stale backends survived: %v", bs)
	}
	drifts, err := Verify(d2.Maps(), Config{}, []*corev1.Service{keep}, []*discoveryv1.EndpointSlice{sl})
	if err != nil || len(drifts) != 0 {
		t.Fatalf("verify after sync: %v %v", drifts, err)
	}
	drifts, _ = Verify(d2.Maps(), Config{}, []*corev1.Service{keep, makeService("default", "s9", "10.96.2.9", ports...)}, []*discoveryv1.EndpointSlice{sl})
	if len(drifts) != 1 || !strings.Contains(drifts[0].Problem, "missing") {
		t.Fatalf("verify should report the missing service: %v", drifts)
	}
}

func TestE2EReconcilerFollowsAPI(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	d := newTestDatapath(t, nil, Config{})
	ports := []svcPort{{name: "http", port: 80, target: 8080}}
	svc := makeService("default", "web", "10.96.3.1", ports...)
	sl := makeSlice("default", "web", "web-1", ports, ep{addr: "10.244.3.1"})
	client := fake.NewClientset(svc, sl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunReconciler(ctx, client, d) }()
	t.Cleanup(func() { cancel(); <-done })

	backends := func() string { return strings.Join(frontendsOf(t, d)["10.96.3.1:80/TCP/internal"].Backends, ",") }
	eventually(t, "initial sync", func() error {
		if b := backends(); b != "10.244.3.1:8080" {
			return fmt.Errorf("backends %q", b)
		}
		return nil
	})
	sl2 := sl.DeepCopy()
	sl2.Endpoints = append(sl2.Endpoints, makeSlice("default", "web", "x", ports, ep{addr: "10.244.3.2"}).Endpoints...)
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, sl2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "endpoint added", func() error {
		if b := backends(); b != "10.244.3.1:8080,10.244.3.2:8080" {
			return fmt.Errorf("backends %q", b)
		}
		return nil
	})
	if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service deleted", func() error {
		if fs := frontendsOf(t, d); len(fs) != 0 {
			return fmt.Errorf("frontends %v", fs)
		}
		return nil
	})
}

func TestE2ECollector(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	d := progRunFixture(t)
	in := buildPacket(pktSpec{src: "10.244.0.5", dst: "10.96.0.10", sport: 1234, dport: 80, proto: 6, tcpFlags: tcpSYN})
	if _, err := d.objs.podIngress.Run(&ebpf.RunOptions{Data: in, DataOut: make([]byte, 200)}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(d.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if mf.GetName() == "skiff_service_packets_total" && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no service with 1 packet")
	}
}
