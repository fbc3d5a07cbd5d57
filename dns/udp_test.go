package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// askOn sends one query on an open socket (so the same read loop, and its
// packed answers, serves every query of a test).
func askOn(t *testing.T, conn *mdns.Conn, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: "udp", Timeout: 3 * time.Second}
	r, _, err := c.ExchangeWithConn(m, conn)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, mdns.TypeToString[qtype], err)
	}
	return r
}

func dialUDP(t *testing.T, addr string) *mdns.Conn {
	t.Helper()
	conn, err := (&mdns.Client{Net: "udp"}).Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func addrs(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// TestNoStaleAnswerAfterWatchEvent primes the read loop's packed answer,
// lets a watch event reach the index, and checks that the very next query
// (no polling) already sees it: for a changed ClusterIP, a removed headless
// endpoint, a deleted Service and a deleted Pod.
func TestNoStaleAnswerAfterWatchEvent(t *testing.T) {
	client := fakeClient()
	reg := prometheus.NewRegistry()
	s := startSyncedServer(t, Config{Client: client, Registerer: reg})
	conn := dialUDP(t, s.Addrs()[0])
	ctx := context.Background()

	prime := func(name string, qtype uint16, want string) {
		t.Helper()
		before := counterValue(t, reg, "skiff_dns_answer_cache_hits_total", nil)
		for range 2 {
			if got := fmt.Sprint(addrs(askOn(t, conn, name, qtype))); got != want {
				t.Fatalf("%s before the change: %s, want %s", name, got, want)
			}
		}
		if after := counterValue(t, reg, "skiff_dns_answer_cache_hits_total", nil); after <= before {
			t.Fatalf("%s: second answer did not come from the packed answers", name)
		}
	}
	// indexHas waits until the index (not DNS) reflects the event.
	indexHas := func(what string, cond func() bool) {
		t.Helper()
		waitFor(t, 5*time.Second, what+" in the index", cond)
	}
	lookup := func(name string) []string {
		rrs, _ := s.idx.lookup(name)
		var out []string
		for _, rr := range rrs {
			if a, ok := rr.(*mdns.A); ok {
				out = append(out, a.A.String())
			}
		}
		return out
	}

	// A ClusterIP changes.
	name := "svc1.testns.svc.cluster.local."
	prime(name, mdns.TypeA, "[10.96.0.100]")
	svc, err := client.CoreV1().Services("testns").Get(ctx, "svc1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.0.200", []string{"10.96.0.200"}
	if _, err := client.CoreV1().Services("testns").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	indexHas("new ClusterIP", func() bool { return fmt.Sprint(lookup(name)) == "[10.96.0.200]" })
	if got := fmt.Sprint(addrs(askOn(t, conn, name, mdns.TypeA))); got != "[10.96.0.200]" {
		t.Errorf("first answer after the update: %s, want [10.96.0.200]", got)
	}

	// A headless endpoint goes away.
	hname := "hdls1.testns.svc.cluster.local."
	prime(hname, mdns.TypeA, "[10.244.1.1 10.244.1.2]")
	sl, err := client.DiscoveryV1().EndpointSlices("testns").Get(ctx, "hdls1-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sl.Endpoints = sl.Endpoints[:1]
	if _, err := client.DiscoveryV1().EndpointSlices("testns").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	indexHas("endpoint removal", func() bool { return len(lookup(hname)) == 1 })
	if got := fmt.Sprint(addrs(askOn(t, conn, hname, mdns.TypeA))); got != "[10.244.1.1]" {
		t.Errorf("first answer after the endpoint went: %s, want [10.244.1.1]", got)
	}

	// The Service is deleted: NXDOMAIN at once.
	prime(name, mdns.TypeA, "[10.96.0.200]")
	if err := client.CoreV1().Services("testns").Delete(ctx, "svc1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	indexHas("service deletion", func() bool { _, ok := s.idx.lookup(name); return !ok })
	if r := askOn(t, conn, name, mdns.TypeA); r.Rcode != mdns.RcodeNameError {
		t.Errorf("first answer after the delete: %s %v, want NXDOMAIN", mdns.RcodeToString[r.Rcode], r.Answer)
	}

	// A verified pod record goes with its Pod.
	pname := "10-244-1-1.testns.pod.cluster.local."
	prime(pname, mdns.TypeA, "[10.244.1.1]")
	if err := client.CoreV1().Pods("testns").Delete(ctx, "p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	indexHas("pod deletion", func() bool {
		ok, _ := s.idx.hasPod("testns", netip.MustParseAddr("10.244.1.1"))
		return !ok
	})
	if r := askOn(t, conn, pname, mdns.TypeA); r.Rcode != mdns.RcodeNameError {
		t.Errorf("first answer after the pod went: %s %v, want NXDOMAIN", mdns.RcodeToString[r.Rcode], r.Answer)
	}
}

// TestWildcardAnswersFromQueriedAddress listens on the wildcard address and
// sends to several local addresses from connected sockets, as glibc does: a
// connected UDP socket drops answers from any other source, so every query
// is only answered if the server replies from the address it was sent to.
func TestWildcardAnswersFromQueriedAddress(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			s := startSyncedServer(t, Config{Client: fakeClient(), Listen: []string{listen}})
			_, port, _ := net.SplitHostPort(s.Addrs()[0])
			targets := []string{"127.0.0.1", "127.0.0.2", "127.0.0.53"}
			if c, err := net.ListenPacket("udp6", "[::1]:0"); err == nil {
				c.Close()
				targets = append(targets, "::1")
			}
			for _, ip := range targets {
				c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
				for i := range 3 { // computed, then packed answers
					m := new(mdns.Msg)
					m.SetQuestion("svc1.testns.svc.cluster.local.", mdns.TypeA)
					r, _, err := c.Exchange(m, net.JoinHostPort(ip, port))
					if err != nil {
						t.Fatalf("query %d to %s: %v (answer sent from another address?)", i, ip, err)
					}
					if len(r.Answer) != 1 {
						t.Fatalf("query %d to %s: %v", i, ip, r)
					}
				}
			}
		})
	}
}

// TestFastPathAllocs checks that a packed answer costs no allocation.
func TestFastPathAllocs(t *testing.T) {
	s := newTestServer(t, Config{Client: fakeClient()})
	svcs, _, _ := fixture()
	for _, svc := range svcs {
		s.idx.setSource("svc/"+svc.Namespace+"/"+svc.Name, serviceRecords(s.cfg.Zone, s.cfg.TTL, svc, nil))
	}
	s.ready.Store(true)
	u, err := listenUDP("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer u.c.Close()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	go func() { // drain, so the sink never fills
		buf := make([]byte, 2048)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	}()
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	l := s.newUDPLoop(u)
	var async sync.WaitGroup
	for _, edns := range []bool{false, true} {
		m := new(mdns.Msg)
		m.SetQuestion("svc1.testns.svc.cluster.local.", mdns.TypeA)
		if edns {
			m.SetEdns0(1232, true)
		}
		q, _ := m.Pack()
		l.packet(q, to, netip.Addr{}, &async) // computes and remembers
		if n := testing.AllocsPerRun(1000, func() { l.packet(q, to, netip.Addr{}, &async) }); n != 0 {
			t.Errorf("edns=%v: %v allocations per packed answer, want 0", edns, n)
		}
	}
}

func TestPackedAnswersBounded(t *testing.T) {
	s := newTestServer(t, Config{Client: fakeClient()})
	s.ready.Store(true)
	l := s.newUDPLoop(nil)
	for i := range packedCacheSize + 500 {
		m := new(mdns.Msg)
		m.SetQuestion(fmt.Sprintf("x%d.testns.svc.cluster.local.", i), mdns.TypeA)
		q, _ := m.Pack()
		resp, st := s.answer(m, true, false)
		if !st.cacheable {
			t.Fatalf("NXDOMAIN in the zone not cacheable")
		}
		qend, _, ok := parsePlainQuery(q)
		if !ok {
			t.Fatalf("plain query not recognised: %x", q)
		}
		l.remember(q[headerLen:qend], resp, 0, mdns.TypeA)
	}
	if n := len(l.cache); n > packedCacheSize {
		t.Errorf("%d packed answers kept, want at most %d", n, packedCacheSize)
	}
}

// TestFloodBounded floods from one client with names that go upstream, to an
// upstream that never answers: the queries waiting on it (one goroutine
// each) stay within MaxForwards, the rest get SERVFAIL at once, and cluster
// names keep being answered throughout.
func TestFloodBounded(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, _, err := hole.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	const maxForwards = 20
	s := startSyncedServer(t, Config{Client: fakeClient(), Upstreams: []string{hole.LocalAddr().String()},
		MaxForwards: maxForwards, ForwardTimeout: 3 * time.Second})
	addr := s.Addrs()[0]
	base := runtime.NumGoroutine()

	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 500
	servfail := 0
	buf := make([]byte, 1500)
	read := func() bool {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			return false
		}
		r := new(mdns.Msg)
		if r.Unpack(buf[:k]) == nil && r.Rcode == mdns.RcodeServerFailure {
			servfail++
		}
		return true
	}
	// As fast as the answers come, with a few unread at most, so that
	// the kernel's socket buffers do not drop any.
	const ahead = 16
	for i := range n {
		m := new(mdns.Msg)
		m.SetQuestion(fmt.Sprintf("flood%d.example.org.", i), mdns.TypeA)
		m.Id = uint16(i)
		b, _ := m.Pack()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		if i >= maxForwards+ahead && !read() {
			break
		}
	}
	for servfail < n-maxForwards && read() {
	}
	if servfail < n-maxForwards {
		t.Errorf("%d of %d flooded queries got SERVFAIL, want at least %d (only %d may wait)", servfail, n, n-maxForwards, maxForwards)
	}
	if g := runtime.NumGoroutine() - base; g > maxForwards+10 {
		t.Errorf("%d more goroutines during the flood, want about %d (MaxForwards)", g, maxForwards)
	}
	if r := query(t, addr, "udp", "svc1.testns.svc.cluster.local.", mdns.TypeA, 0); len(r.Answer) != 1 {
		t.Errorf("cluster name during the flood: %v", r)
	}
}
