package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

var webPorts = []svcPort{{name: "http", port: 80, target: 8080}, {name: "dns", port: 53, target: 5353, proto: corev1.ProtocolUDP}}

func webService(backends ...string) (*corev1.Service, []*discoveryv1.EndpointSlice) {
	var eps []ep
	for _, b := range backends {
		eps = append(eps, ep{addr: b, node: "node-a"})
	}
	return makeService("default", "web", "10.96.0.10", webPorts...),
		[]*discoveryv1.EndpointSlice{makeSlice("default", "web", "web-abc", webPorts, eps...)}
}

func nodeAConfig(tp *topo, pinDir string) Config {
	return Config{
		PinDir: pinDir, NodeIPs: []net.IP{ip4("10.0.1.1")}, Devices: []string{"dext", "dab"},
		NodeName: "node-a", MaxServices: 4096, MaxBackends: 4096, MaxConntrack: 16384,
	}
}

// startNodeA builds the topology and a datapath on node A with the web Service on b1..b3.
func startNodeA(t *testing.T) (*topo, *Datapath) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	tp := newTopo(t)
	d := newTestDatapath(t, tp.nodeA, nodeAConfig(tp, testPinDir(t)))
	for _, ifc := range tp.podIfaces {
		if err := d.AttachPod(ifc); err != nil {
			t.Fatal(err)
		}
	}
	svc, slices := webService(tp.backendIP["b1"], tp.backendIP["b2"], tp.backendIP["b3"])
	if err := d.UpsertService(svc, slices); err != nil {
		t.Fatal(err)
	}
	return tp, d
}

func TestE2EClusterIPReachesEveryBackendEvenly(t *testing.T) {
	tp, _ := startNodeA(t)
	if err := tp.extClient.Do(func() error {
		dev, err := DefaultRouteDevice()
		if err == nil && dev != "eth0" {
			err = fmt.Errorf("default route device %s, want eth0", dev)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const n = 90
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		c, err := dial(tp.client, "10.96.0.10:80")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if err := c.echo("hello"); err != nil {
			t.Fatal(err)
		}
		seen[c.backend]++
		c.Close()
	}
	for _, b := range []string{"b1", "b2", "b3"} {
		// Expected 30 each; a fair hash stays well inside 15..45.
		if seen[b] < n/6 || seen[b] > n/2 {
			t.Errorf("backend %s got %d of %d connections: %v", b, seen[b], n, seen)
		}
	}
	t.Logf("distribution: %v", seen)
}

func TestE2EUDP(t *testing.T) {
	tp, _ := startNodeA(t)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		ans, from, err := udpAsk(tp.client, "10.96.0.10:53")
		if err != nil {
			t.Fatal(err)
		}
		if from != "10.96.0.10:53" {
			t.Fatalf("answer came from %s, want the service address 10.96.0.10:53", from)
		}
		seen[ans] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 UDP sockets reached only %v", seen)
	}
}

func TestE2EBackendRemovalKeepsEstablished(t *testing.T) {
	tp, d := startNodeA(t)
	c, err := dial(tp.client, "10.96.0.10:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	removed := c.backend
	var rest []string
	for _, b := range []string{"b1", "b2", "b3"} {
		if b != removed {
			rest = append(rest, tp.backendIP[b])
		}
	}
	svc, slices := webService(rest...)
	if err := d.UpsertService(svc, slices); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		nc, err := dial(tp.client, "10.96.0.10:80")
		if err != nil {
			t.Fatal(err)
		}
		if nc.backend == removed {
			t.Fatalf("new connection %d reached removed backend %s", i, removed)
		}
		nc.Close()
	}
	if err := c.echo("still there"); err != nil {
		t.Fatalf("established connection to removed backend %s broke: %v", removed, err)
	}
}

func TestE2ENodePort(t *testing.T) {
	tp, d := startNodeA(t)
	local := []svcPort{{name: "http", port: 80, target: 8080, nodePort: 30081}}
	if err := d.UpsertService(makeService("default", "np-local", "10.96.0.21", local...), []*discoveryv1.EndpointSlice{
		makeSlice("default", "np-local", "np-local-1", local, ep{addr: tp.backendIP["b1"], node: "node-a"}),
	}); err != nil {
		t.Fatal(err)
	}
	remote := []svcPort{{name: "http", port: 80, target: 8080, nodePort: 30082}}
	if err := d.UpsertService(makeService("default", "np-remote", "10.96.0.22", remote...), []*discoveryv1.EndpointSlice{
		makeSlice("default", "np-remote", "np-remote-1", remote, ep{addr: tp.backendIP["b4"], node: "node-b"}),
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ addr, want string }{{"10.0.1.1:30081", "b1"}, {"10.0.1.1:30082", "b4"}} {
		for i := 0; i < 5; i++ {
			c, err := dial(tp.extClient, tc.addr)
			if err != nil {
				t.Fatalf("NodePort %s: %v", tc.addr, err)
			}
			if c.backend != tc.want {
				t.Fatalf("NodePort %s reached %s, want %s", tc.addr, c.backend, tc.want)
			}
			if err := c.echo("np"); err != nil {
				t.Fatal(err)
			}
			if got := c.RemoteAddr().String(); got != tc.addr {
				t.Fatalf("client sees peer %s, want %s", got, tc.addr)
			}
			c.Close()
		}
	}
	// A ClusterIP is not served from outside the node.
	if _, err := dial(tp.extClient, "10.96.0.10:80"); err == nil {
		t.Fatal("ClusterIP answered an external client")
	}
}

func TestE2EZeroBackendsRefusedQuickly(t *testing.T) {
	tp, d := startNodeA(t)
	empty := []svcPort{{name: "http", port: 80, target: 8080}, {name: "dns", port: 53, target: 5353, proto: corev1.ProtocolUDP}}
	if err := d.UpsertService(makeService("default", "empty", "10.96.0.30", empty...), nil); err != nil {
		t.Fatal(err)
	}
	before := dropTotal(t, d, DropNoBackend)
	_, err := dial(tp.client, "10.96.0.30:80")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to a service without backends: %v, want connection refused", err)
	}
	if after := dropTotal(t, d, DropNoBackend); after <= before {
		t.Fatalf("no_backend counter did not move: %d -> %d", before, after)
	}
	// UDP gets ICMP port unreachable, which a connected socket reports as refused.
	if _, err := udpAskConnected(tp.client, "10.96.0.30:53"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("UDP to a service without backends: %v, want connection refused", err)
	}
}

func dropTotal(t *testing.T, d *Datapath, r DropReason) uint64 {
	st, err := d.Drops()
	if err != nil {
		t.Fatal(err)
	}
	return st[r]
}

func TestE2EAgentRestartKeepsConnections(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	tp := newTopo(t)
	pinDir := testPinDir(t)
	cfg := nodeAConfig(tp, pinDir)
	var d *Datapath
	if err := tp.nodeA.Do(func() error {
		var err error
		d, err = New(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, ifc := range tp.podIfaces {
		if err := d.AttachPod(ifc); err != nil {
			t.Fatal(err)
		}
	}
	svc, slices := webService(tp.backendIP["b1"], tp.backendIP["b2"], tp.backendIP["b3"])
	if err := d.UpsertService(svc, slices); err != nil {
		t.Fatal(err)
	}
	long, err := dial(tp.client, "10.96.0.10:80")
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()

	// The agent stops: nothing is unpinned, so translation goes on without it.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := long.echo("agent down"); err != nil {
		t.Fatalf("long-lived connection while the agent is down: %v", err)
	}
	c, err := dial(tp.client, "10.96.0.10:80")
	if err != nil {
		t.Fatalf("new connection while the agent is down: %v", err)
	}
	c.Close()

	// A new agent adopts maps and links, replaces the programs, and resyncs.
	var d2 *Datapath
	if err := tp.nodeA.Do(func() error {
		var err error
		d2, err = New(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Remove() })
	if err := d2.Sync([]*corev1.Service{svc}, slices); err != nil {
		t.Fatal(err)
	}
	for _, ifc := range tp.podIfaces {
		if err := d2.AttachPod(ifc); err != nil {
			t.Fatal(err)
		}
	}
	if err := long.echo("agent back"); err != nil {
		t.Fatalf("long-lived connection after the restart: %v", err)
	}
	for i := 0; i < 10; i++ {
		c, err := dial(tp.client, "10.96.0.10:80")
		if err != nil {
			t.Fatalf("new connection after the restart: %v", err)
		}
		c.Close()
	}
	// Exactly one program per hook: the update replaced, not stacked.
	links, _ := os.ReadDir(filepath.Join(pinDir, "links"))
	if len(links) != 2*len(tp.podIfaces)+4 {
		t.Errorf("pinned links: %d, want %d", len(links), 2*len(tp.podIfaces)+4)
	}
	stats, err := d2.ServiceStats()
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) == 0 {
		t.Fatal("no service counters after restart")
	}
}

func TestE2EDetachPod(t *testing.T) {
	tp, d := startNodeA(t)
	if c, err := dial(tp.client, "10.96.0.10:80"); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	if err := d.DetachPod("vpcl"); err != nil {
		t.Fatal(err)
	}
	if err := d.DetachPod("vpcl"); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.PinDir(), "links", "pod_vpcl_ingress")); !os.IsNotExist(err) {
		t.Fatalf("pinned link left after detach: %v", err)
	}
	// Untranslated, the ClusterIP meets the unreachable route: refused at once, never sent on.
	if _, err := dial(tp.client, "10.96.0.10:80"); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("after detach: %v, want no route to host", err)
	}
}
