package dns

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestServfailUntilSynced(t *testing.T) {
	up := startUpstream(t)
	client := fakeClient()
	release := make(chan struct{})
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	s := startServer(t, Config{Client: client, Upstreams: []string{up.addr}})
	addr := s.Addrs()[0]
	if s.Ready() {
		t.Fatal("Ready before the first list returned")
	}
	for _, name := range []string{"svc1.testns.svc.cluster.local.", "nosuch.testns.svc.cluster.local.", "dns-version.cluster.local."} {
		if r := query(t, addr, "udp", name, mdns.TypeA, 0); r.Rcode != mdns.RcodeServerFailure {
			t.Errorf("%s before sync: %s, want SERVFAIL", name, mdns.RcodeToString[r.Rcode])
		}
	}
	// Outside names do not depend on the sync.
	if r := query(t, addr, "udp", "example.net.", mdns.TypeA, 0); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("forwarded name before sync: %v", r)
	}
	close(release)
	waitFor(t, 10*time.Second, "sync", s.Ready)
	if r := query(t, addr, "udp", "svc1.testns.svc.cluster.local.", mdns.TypeA, 0); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after sync: %v", r)
	}
}

// bigHeadless adds a headless Service with n ready endpoints.
func bigHeadless(t testing.TB, c *fake.Clientset, ns, name string, n int) {
	t.Helper()
	ctx := context.Background()
	tcp := corev1.ProtocolTCP
	if _, err := c.CoreV1().Services(ns).Create(ctx, headlessService(ns, name, svcPort("http", tcp, 80)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var eps []ep
	for i := range n {
		eps = append(eps, ep{ip: fmt.Sprintf("10.245.%d.%d", i/250, i%250+1), ready: true})
	}
	sl := slice(ns, name, name+"-a", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("http", tcp, 80)}, eps...)
	if _, err := c.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestTruncationAndTCP(t *testing.T) {
	client := fakeClient()
	bigHeadless(t, client, "testns", "big", 100)
	s := startSyncedServer(t, Config{Client: client})
	addr := s.Addrs()[0]
	name := "big.testns.svc.cluster.local."

	for _, tc := range []struct {
		edns uint16
		max  int
	}{{0, 512}, {1232, 1232}, {4096, maxUDPResponseSize}} {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		if tc.edns > 0 {
			m.SetEdns0(tc.edns, false)
		}
		c := &mdns.Client{Net: "udp", Timeout: 3 * time.Second}
		conn, err := c.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n > tc.max {
			t.Errorf("edns %d: %d-byte UDP answer, want <= %d", tc.edns, n, tc.max)
		}
		r := new(mdns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatalf("edns %d: unpack: %v", tc.edns, err)
		}
		if !r.Truncated {
			t.Errorf("edns %d: TC not set on a cut answer (%d records)", tc.edns, len(r.Answer))
		}
		if (tc.edns > 0) != (r.IsEdns0() != nil) {
			t.Errorf("edns %d: OPT in answer = %v", tc.edns, r.IsEdns0() != nil)
		}
	}

	// The client's retry over TCP gets everything.
	r := query(t, addr, "tcp", name, mdns.TypeA, 0)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: TC=%v, %d answers, want all 100", r.Truncated, len(r.Answer))
	}
	// And miekg's client does the fallback itself like a stub resolver.
	c := &mdns.Client{Net: "udp", Timeout: 3 * time.Second}
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	r, _, err := c.Exchange(m, addr)
	if err != nil || !r.Truncated {
		t.Fatalf("UDP: %v, TC=%v", err, r != nil && r.Truncated)
	}
	c.Net = "tcp"
	if r, _, err = c.Exchange(m, addr); err != nil || len(r.Answer) != 100 {
		t.Fatalf("TCP retry: %v, %d answers", err, len(r.Answer))
	}
}

func TestEDNS(t *testing.T) {
	s := startSyncedServer(t, Config{Client: fakeClient()})
	addr := s.Addrs()[0]
	m := new(mdns.Msg)
	m.SetQuestion("svc1.testns.svc.cluster.local.", mdns.TypeA)
	m.SetEdns0(4096, true)
	r, err := exchange(addr, "udp", m)
	if err != nil {
		t.Fatal(err)
	}
	opt := r.IsEdns0()
	if opt == nil || opt.Version() != 0 || !opt.Do() || opt.UDPSize() != maxUDPResponseSize {
		t.Errorf("OPT %v, want version 0, DO echoed, size %d", opt, maxUDPResponseSize)
	}
	if !r.Authoritative {
		t.Errorf("AA not set for a cluster answer")
	}

	m.IsEdns0().SetVersion(1)
	r, err = exchange(addr, "udp", m)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != mdns.RcodeBadVers || r.IsEdns0() == nil {
		t.Errorf("EDNS version 1: rcode %s, OPT %v, want BADVERS with OPT", mdns.RcodeToString[r.Rcode], r.IsEdns0())
	}
}

// rawUDP sends bytes and returns the answer, or nil when none comes.
func rawUDP(t *testing.T, addr string, b []byte) *mdns.Msg {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	r := new(mdns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("server sent an unparseable answer: %v", err)
	}
	return r
}

func TestBadInput(t *testing.T) {
	s := startSyncedServer(t, Config{Client: fakeClient()})
	addr := s.Addrs()[0]

	// Two questions: FORMERR.
	m := new(mdns.Msg)
	m.SetQuestion("svc1.testns.svc.cluster.local.", mdns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	b, _ := m.Pack()
	if r := rawUDP(t, addr, b); r == nil || r.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %v, want FORMERR", r)
	}
	// No question: FORMERR.
	m.Question = nil
	b, _ = m.Pack()
	if r := rawUDP(t, addr, b); r == nil || r.Rcode != mdns.RcodeFormatError {
		t.Errorf("no question: %v, want FORMERR", r)
	}
	// A header claiming a question that is not there, and garbage.
	for _, junk := range [][]byte{
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x05, 'a'},
		[]byte("hello, this is not DNS at all"),
		{1, 2, 3},
	} {
		// Garbage whose header reads as another opcode gets NOTIMP.
		if r := rawUDP(t, addr, junk); r != nil && r.Rcode != mdns.RcodeFormatError && r.Rcode != mdns.RcodeNotImplemented {
			t.Errorf("junk %q: %s, want FORMERR, NOTIMP or silence", junk, mdns.RcodeToString[r.Rcode])
		}
	}
	// An oversized query (beyond the 4 KiB read buffer) is cut and rejected.
	m = new(mdns.Msg)
	m.SetQuestion("svc1.testns.svc.cluster.local.", mdns.TypeA)
	opt := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
	opt.SetUDPSize(4096)
	opt.Option = append(opt.Option, &mdns.EDNS0_LOCAL{Code: 65001, Data: make([]byte, 8000)})
	m.Extra = append(m.Extra, opt)
	b, _ = m.Pack()
	if r := rawUDP(t, addr, b); r != nil && r.Rcode != mdns.RcodeFormatError {
		t.Errorf("oversized query: %s, want FORMERR or silence", mdns.RcodeToString[r.Rcode])
	}
	// A response sent to us is ignored; an update is not implemented.
	m = new(mdns.Msg)
	m.SetQuestion("svc1.testns.svc.cluster.local.", mdns.TypeA)
	m.Response = true
	b, _ = m.Pack()
	if r := rawUDP(t, addr, b); r != nil {
		t.Errorf("answered a response: %v", r)
	}
	m = new(mdns.Msg)
	m.SetUpdate("cluster.local.")
	b, _ = m.Pack()
	if r := rawUDP(t, addr, b); r == nil || r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("update: %v, want NOTIMP", r)
	}
	// CHAOS and zone transfers are refused.
	m = new(mdns.Msg)
	m.SetQuestion("version.bind.", mdns.TypeTXT)
	m.Question[0].Qclass = mdns.ClassCHAOS
	if r, err := exchange(addr, "udp", m); err != nil || r.Rcode != mdns.RcodeRefused {
		t.Errorf("CHAOS: %v %v, want REFUSED", r, err)
	}
	if r := query(t, addr, "tcp", "cluster.local.", mdns.TypeAXFR, 0); r.Rcode != mdns.RcodeRefused {
		t.Errorf("AXFR: %s, want REFUSED", mdns.RcodeToString[r.Rcode])
	}
	// Still serving.
	if r := query(t, addr, "udp", "svc1.testns.svc.cluster.local.", mdns.TypeA, 0); len(r.Answer) != 1 {
		t.Errorf("after bad input: %v", r)
	}
}

func TestRateLimit(t *testing.T) {
	s := startSyncedServer(t, Config{Client: fakeClient(), ClientQPS: 5})
	addr := s.Addrs()[0]
	refused := 0
	for range 30 {
		if r := query(t, addr, "udp", "svc1.testns.svc.cluster.local.", mdns.TypeA, 0); r.Rcode == mdns.RcodeRefused {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("30 back-to-back queries with a limit of 5/s (burst 10): none refused")
	}
}

func TestForwardCache(t *testing.T) {
	up := startUpstream(t)
	reg := prometheus.NewRegistry()
	s := startSyncedServer(t, Config{Client: fakeClient(), Upstreams: []string{up.addr}, Registerer: reg})
	addr := s.Addrs()[0]
	for range 3 {
		r := query(t, addr, "udp", "example.net.", mdns.TypeA, 0)
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || r.Authoritative {
			t.Fatalf("forwarded answer: %v", r)
		}
	}
	for range 3 {
		if r := query(t, addr, "udp", "nosuch.example.net.", mdns.TypeA, 0); r.Rcode != mdns.RcodeNameError {
			t.Fatalf("forwarded NXDOMAIN: %v", r)
		}
	}
	if n := up.queries.Load(); n != 2 {
		t.Errorf("upstream saw %d queries, want 2 (the rest from the cache)", n)
	}
	// A large upstream answer: the forwarder retries the upstream over TCP
	// and the client gets TC over UDP, then everything over TCP.
	if r := query(t, addr, "udp", "big.example.net.", mdns.TypeA, 0); !r.Truncated {
		t.Errorf("big answer over UDP without EDNS: TC not set (%d answers)", len(r.Answer))
	}
	if r := query(t, addr, "tcp", "big.example.net.", mdns.TypeA, 0); len(r.Answer) != 60 {
		t.Errorf("big answer over TCP: %d answers, want 60", len(r.Answer))
	}
	hits := counterValue(t, reg, "skiff_dns_cache_hits_total", nil)
	if hits < 4 {
		t.Errorf("cache hits %v, want >= 4", hits)
	}
	if v := counterValue(t, reg, "skiff_dns_queries_total", map[string]string{"qtype": "A", "rcode": "NOERROR"}); v < 3 {
		t.Errorf("queries_total{A,NOERROR} = %v, want >= 3", v)
	}
	if v := counterValue(t, reg, "skiff_dns_queries_total", map[string]string{"qtype": "A", "rcode": "NXDOMAIN"}); v != 3 {
		t.Errorf("queries_total{A,NXDOMAIN} = %v, want 3", v)
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "skiff_dns_request_duration_seconds" && mf.GetMetric()[0].GetHistogram().GetSampleCount() > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no latency histogram samples")
	}
}

func TestForwardUpstreamDown(t *testing.T) {
	// A port nobody listens on: the query fails fast with SERVFAIL.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	s := startSyncedServer(t, Config{Client: fakeClient(), Upstreams: []string{dead}, ForwardTimeout: 300 * time.Millisecond})
	if r := query(t, s.Addrs()[0], "udp", "example.net.", mdns.TypeA, 0); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("dead upstream: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestWatchUpdates checks that API changes reach answers (no stale record
// after an event); the latency is measured in BenchmarkUpdateLatency.
func TestWatchUpdates(t *testing.T) {
	client := fakeClient()
	s := startSyncedServer(t, Config{Client: client})
	addr := s.Addrs()[0]
	ctx := context.Background()
	name := "late.testns.svc.cluster.local."
	answerIs := func(want string) func() bool {
		return func() bool {
			r := query(t, addr, "udp", name, mdns.TypeA, 0)
			if want == "" {
				return r.Rcode == mdns.RcodeNameError
			}
			return len(r.Answer) == 1 && r.Answer[0].(*mdns.A).A.String() == want
		}
	}
	svc := clusterIPService("testns", "late", []string{"10.96.1.1"})
	if _, err := client.CoreV1().Services("testns").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "new service answered", answerIs("10.96.1.1"))
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.1.2", []string{"10.96.1.2"}
	if _, err := client.CoreV1().Services("testns").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "changed service answered", answerIs("10.96.1.2"))
	if err := client.CoreV1().Services("testns").Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "deleted service NXDOMAIN", answerIs(""))
	// The PTR went with it, and the namespace still exists through others.
	if r := query(t, addr, "udp", "2.1.96.10.in-addr.arpa.", mdns.TypePTR, 0); r.Rcode == mdns.RcodeSuccess && len(r.Answer) > 0 {
		t.Errorf("stale PTR after delete: %v", r.Answer)
	}

	// Headless endpoints come and go with their slice.
	hname := "hdls1.testns.svc.cluster.local."
	sl, err := client.DiscoveryV1().EndpointSlices("testns").Get(ctx, "hdls1-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sl.Endpoints = sl.Endpoints[:1]
	if _, err := client.DiscoveryV1().EndpointSlices("testns").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "endpoint removal", func() bool {
		return len(query(t, addr, "udp", hname, mdns.TypeA, 0).Answer) == 1
	})
	if err := client.DiscoveryV1().EndpointSlices("testns").Delete(ctx, "hdls1-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "slice delete", func() bool {
		return query(t, addr, "udp", hname, mdns.TypeA, 0).Rcode == mdns.RcodeNameError
	})
	// Pods in verified mode.
	if _, err := client.CoreV1().Pods("testns").Create(ctx, pod("testns", "p2", "10.244.7.7"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "pod record", func() bool {
		return len(query(t, addr, "udp", "10-244-7-7.testns.pod.cluster.local.", mdns.TypeA, 0).Answer) == 1
	})
}

func TestPodsModes(t *testing.T) {
	for _, tc := range []struct {
		mode  PodsMode
		name  string
		rcode int
		n     int
	}{
		{PodsInsecure, "10-1-2-3.anyns.pod.cluster.local.", mdns.RcodeSuccess, 1},
		{PodsInsecure, "anyns.pod.cluster.local.", mdns.RcodeSuccess, 0},
		{PodsInsecure, "300-1-2-3.anyns.pod.cluster.local.", mdns.RcodeNameError, 0},
		{PodsDisabled, "10-244-1-1.testns.pod.cluster.local.", mdns.RcodeNameError, 0},
		{PodsDisabled, "pod.cluster.local.", mdns.RcodeNameError, 0},
	} {
		t.Run(string(tc.mode)+"/"+tc.name, func(t *testing.T) {
			s := startSyncedServer(t, Config{Client: fakeClient(), Pods: tc.mode})
			r := query(t, s.Addrs()[0], "udp", tc.name, mdns.TypeA, 0)
			if r.Rcode != tc.rcode || len(r.Answer) != tc.n {
				t.Errorf("%s: %s with %d answers, want %s with %d", tc.name, mdns.RcodeToString[r.Rcode], len(r.Answer), mdns.RcodeToString[tc.rcode], tc.n)
			}
		})
	}
	// IPv6 insecure.
	s := startSyncedServer(t, Config{Client: fakeClient(), Pods: PodsInsecure})
	r := query(t, s.Addrs()[0], "udp", "fd00--1.ns.pod.cluster.local.", mdns.TypeAAAA, 0)
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "fd00::1") {
		t.Errorf("IPv6 pod name: %v", r)
	}
}

func TestConfigErrors(t *testing.T) {
	c := fake.NewClientset()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Client"},
		{Config{Client: c, Zone: "bad..zone"}, "Zone"},
		{Config{Client: c, Listen: []string{"nope"}}, "Listen"},
		{Config{Client: c, Upstreams: []string{"dns.google"}}, "Upstreams"},
		{Config{Client: c, Upstreams: []string{"1.1.1.1:99999"}}, "Upstreams"},
		{Config{Client: c, Pods: "sometimes"}, "Pods"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	// Own address as upstream is dropped, not looped to.
	cfg := Config{Client: c, Listen: []string{"127.0.0.1:5353"}, Upstreams: []string{"127.0.0.1:5353", "10.0.0.1"}, Registerer: prometheus.NewRegistry()}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.cfg.Upstreams; len(got) != 1 || got[0] != "10.0.0.1:53" {
		t.Errorf("upstreams %v, want [10.0.0.1:53]", got)
	}
}
