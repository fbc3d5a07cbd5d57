package dns

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

// startServer runs a Server on a random loopback port until the test ends and
// waits until it listens (not until it is synced).
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := newTestServer(t, cfg)
	runTestServer(t, s)
	return s
}

// newTestServer builds a Server for a random loopback port, with no
// upstreams and a private metrics registry unless cfg says otherwise.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Zone == "" {
		cfg.Zone = "cluster.local"
	}
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = []string{}
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// runTestServer runs s until the test ends and waits until it listens.
func runTestServer(t testing.TB, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "server listening", func() bool { return len(s.Addrs()) > 0 })
}

func startSyncedServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := startServer(t, cfg)
	waitFor(t, 10*time.Second, "first sync", s.Ready)
	return s
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// query sends one query over UDP or TCP ("udp"/"tcp") and returns the answer.
func query(t testing.TB, addr, network, name string, qtype uint16, edns uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	r, err := exchange(addr, network, m)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return r
}

func exchange(addr, network string, m *mdns.Msg) (*mdns.Msg, error) {
	c := &mdns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// upstream is a loopback DNS server standing in for the node's resolver.
type upstream struct {
	addr    string
	queries atomic.Int64
}

// startUpstream serves example.net A 192.0.2.53 (TTL 300), big.example.net
// with 60 A records, and NXDOMAIN with an SOA (TTL 60, minimum 30) for the rest.
func startUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		u.queries.Add(1)
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name == "example.net." && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, mustRR(t, "example.net. 300 IN A 192.0.2.53"))
		case q.Name == "big.example.net." && q.Qtype == mdns.TypeA:
			for i := range 60 {
				m.Answer = append(m.Answer, mustRR(t, fmt.Sprintf("big.example.net. 300 IN A 192.0.2.%d", i+1)))
			}
		case q.Name == "example.net.":
			m.Ns = append(m.Ns, mustRR(t, "example.net. 60 IN SOA ns.example.net. h.example.net. 1 2 3 4 30"))
		default:
			m.Rcode = mdns.RcodeNameError
			m.Ns = append(m.Ns, mustRR(t, "net. 60 IN SOA ns.example.net. h.example.net. 1 2 3 4 30"))
		}
		if opt := r.IsEdns0(); opt != nil {
			m.SetEdns0(opt.UDPSize(), opt.Do())
		}
		if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
			size := mdns.MinMsgSize
			if opt := r.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

func mustRR(t testing.TB, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return rr
}

// normRRs renders records for comparison: sorted zone-file lines, SOA serial zeroed.
func normRRs(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		if soa, ok := rr.(*mdns.SOA); ok {
			c := *soa
			c.Serial = 0
			rr = &c
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	sort.Strings(out)
	return out
}

func parseRRs(t testing.TB, lines []string) []string {
	t.Helper()
	var rrs []mdns.RR
	for _, l := range lines {
		rrs = append(rrs, mustRR(t, l))
	}
	return normRRs(rrs)
}

// Object builders.

func clusterIPService(ns, name string, ips []string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ips[0], ClusterIPs: ips, Ports: ports,
		},
	}
}

func headlessService(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}, Ports: ports,
		},
	}
}

func externalService(ns, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

func svcPort(name string, proto corev1.Protocol, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: port, TargetPort: intstr.FromInt32(port)}
}

type ep struct {
	ip       string
	hostname string
	ready    bool
}

func slice(ns, svc, name string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: at,
		Ports:       ports,
	}
	for _, e := range eps {
		ready := e.ready
		d := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
		if e.hostname != "" {
			h := e.hostname
			d.Hostname = &h
		}
		sl.Endpoints = append(sl.Endpoints, d)
	}
	return sl
}

func slicePort(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port}
}

func pod(ns, name, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// fixture is the cluster the table tests run against.
func fixture() (svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice, pods []*corev1.Pod) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	svcs = []*corev1.Service{
		clusterIPService("default", "kubernetes", []string{"10.96.0.1"}, svcPort("https", tcp, 443)),
		clusterIPService("testns", "svc1", []string{"10.96.0.100"}, svcPort("http", tcp, 80), svcPort("dns", udp, 53)),
		clusterIPService("testns", "unnamed", []string{"10.96.0.102"}, svcPort("", tcp, 8080)),
		clusterIPService("testns", "dual", []string{"10.96.0.101", "fd00::101"}, svcPort("http", tcp, 80)),
		headlessService("testns", "hdls1", svcPort("http", tcp, 80)),
		headlessService("testns", "hdlsnr", svcPort("http", tcp, 80)),
		headlessService("testns", "hdlsempty", svcPort("http", tcp, 80)),
		headlessService("testns", "hdls6", svcPort("http", tcp, 80)),
		externalService("testns", "ext", "example.net"),
		externalService("testns", "ext2", "svc1.testns.svc.cluster.local"),
	}
	for _, s := range svcs {
		if s.Name == "hdlsnr" {
			s.Spec.PublishNotReadyAddresses = true
		}
	}
	slices = []*discoveryv1.EndpointSlice{
		slice("testns", "hdls1", "hdls1-a", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("http", tcp, 80)},
			ep{ip: "10.244.1.1", hostname: "pet-0", ready: true},
			ep{ip: "10.244.1.2", ready: true},
			ep{ip: "10.244.1.3", hostname: "pet-2", ready: false}),
		slice("testns", "hdlsnr", "hdlsnr-a", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("http", tcp, 80)},
			ep{ip: "10.244.2.1", ready: false}),
		slice("testns", "hdls6", "hdls6-a", discoveryv1.AddressTypeIPv6, []discoveryv1.EndpointPort{slicePort("http", tcp, 80)},
			ep{ip: "fd00:244::5", hostname: "web", ready: true}),
		// A ClusterIP service's slices add nothing.
		slice("testns", "svc1", "svc1-a", discoveryv1.AddressTypeIPv4, nil, ep{ip: "10.244.3.1", ready: true}),
	}
	pods = []*corev1.Pod{pod("testns", "p1", "10.244.1.1")}
	return svcs, slices, pods
}

// fakeClient returns a fake clientset holding the fixture.
func fakeClient() *fake.Clientset {
	svcs, slices, pods := fixture()
	c := fake.NewClientset()
	ctx := context.Background()
	for _, s := range svcs {
		if _, err := c.CoreV1().Services(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			panic(err)
		}
	}
	for _, s := range slices {
		if _, err := c.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			panic(err)
		}
	}
	for _, p := range pods {
		if _, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			panic(err)
		}
	}
	return c
}

var _ kubernetes.Interface = (*fake.Clientset)(nil)
