package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

// benchCluster builds 1,000 Services with 10 endpoints each (10,000
// endpoints): 900 ClusterIP and 100 headless.
func benchCluster() (*fake.Clientset, []string) {
	var objs []runtime.Object
	var names []string
	tcp := corev1.ProtocolTCP
	for i := range 1000 {
		ns := fmt.Sprintf("ns%d", i%20)
		name := fmt.Sprintf("svc%d", i)
		var svc *corev1.Service
		if i%10 == 0 {
			svc = headlessService(ns, name, svcPort("http", tcp, 80))
		} else {
			svc = clusterIPService(ns, name, []string{fmt.Sprintf("10.%d.%d.%d", 96+i/65536, i/256%256, i%256)}, svcPort("http", tcp, 80))
		}
		objs = append(objs, svc)
		var eps []ep
		for j := range 10 {
			eps = append(eps, ep{ip: fmt.Sprintf("10.244.%d.%d", i/25, (i%25)*10+j+1), ready: true})
		}
		objs = append(objs, slice(ns, name, name+"-x", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("http", tcp, 80)}, eps...))
		if i%10 != 0 {
			names = append(names, name+"."+ns+".svc.cluster.local.")
		}
	}
	return fake.NewClientset(objs...), names
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkClusterA measures A-record queries for random ClusterIP services
// of a 1,000-service, 10,000-endpoint cluster over loopback UDP, for the
// read-loop server and, as "before", miekg/dns's own UDP server.
//
// The load generator is closed-loop like dnsperf -q: DNS_BENCH_SOCKETS
// client sockets (default 4), each with DNS_BENCH_WINDOW queries in flight
// (default 8), one goroutine per socket that sends the next query as soon as
// an answer arrives. The in-flight total is reported ("inflight"): by
// Little's law the mean latency is at least inflight/qps, so a generator with
// unbounded outstanding queries measures its own queue, not the server.
// Latency is send to receive, so the client's own delays count against the
// server; a query unanswered for 200 ms counts as lost.
//
//	go test ./dns -run '^$' -bench ClusterA -benchtime 300000x
func BenchmarkClusterA(b *testing.B) {
	client, names := benchCluster()
	for _, impl := range []struct {
		name  string
		miekg bool
	}{{"server=loops", false}, {"server=miekg", true}} {
		b.Run(impl.name, func(b *testing.B) {
			s := newTestServer(b, Config{Client: client, Pods: PodsDisabled})
			s.miekgUDP = impl.miekg
			runTestServer(b, s)
			waitFor(b, 10*time.Second, "first sync", s.Ready)
			benchQPS(b, s.Addrs()[0], names)
		})
	}
}

func benchQPS(b *testing.B, addr string, names []string) {
	// Pre-packed queries; the ID is patched per send.
	var packets [][]byte
	for _, n := range names {
		m := new(mdns.Msg)
		m.SetQuestion(n, mdns.TypeA)
		p, _ := m.Pack()
		packets = append(packets, p)
	}
	// Warm-up and correctness check.
	if r := query(b, addr, "udp", names[0], mdns.TypeA, 0); len(r.Answer) != 1 {
		b.Fatalf("warm-up answer: %v", r)
	}

	sockets := envInt("DNS_BENCH_SOCKETS", 4)
	window := min(envInt("DNS_BENCH_WINDOW", 8), 4096)
	hist := hdrhistogram.New(1, int64(time.Second/time.Microsecond), 3)
	var mu sync.Mutex
	var lost, last int64
	var budget atomic.Int64
	budget.Store(int64(b.N))

	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range sockets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runSocket(b, addr, packets, g, window, &budget)
			mu.Lock()
			hist.Merge(r.hist)
			lost += r.lost
			last = max(last, r.lastRecv)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	// Until the last answer, not until the sockets noticed the end.
	elapsed := time.Unix(0, last).Sub(start)

	b.ReportMetric(float64(hist.TotalCount())/elapsed.Seconds(), "qps")
	b.ReportMetric(float64(hist.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99)), "p99-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99.9)), "p99.9-µs")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(sockets*window), "inflight")
	// CPU time of the whole process (server and generator) per answer:
	// what other load on the machine does not change much.
	b.ReportMetric(float64(cpu.Microseconds())/float64(max(1, hist.TotalCount())), "cpu-µs/q")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type socketResult struct {
	hist     *hdrhistogram.Histogram // µs
	lost     int64
	lastRecv int64 // unix ns of the newest answer
}

// runSocket keeps window queries in flight on one socket while the shared
// budget lasts: one goroutine sends window queries, then one more per answer.
func runSocket(b *testing.B, addr string, packets [][]byte, seed, window int, budget *atomic.Int64) socketResult {
	res := socketResult{hist: hdrhistogram.New(1, int64(time.Second/time.Microsecond), 3)}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		b.Error(err)
		return res
	}
	defer conn.Close()
	var sendTimes [65536]int64 // by query ID, unix ns; 0 = not in flight
	pkt := make([]byte, 512)
	id := uint16(seed * 7919)
	i := seed * 131
	outstanding := 0
	send := func() bool {
		if budget.Add(-1) < 0 {
			return false
		}
		p := packets[i%len(packets)]
		i += 7
		n := copy(pkt, p)
		id++
		pkt[0], pkt[1] = byte(id>>8), byte(id)
		sendTimes[id] = time.Now().UnixNano()
		if _, err := conn.Write(pkt[:n]); err != nil {
			b.Error(err)
			return false
		}
		outstanding++
		return true
	}
	for outstanding < window && send() {
	}
	buf := make([]byte, 1500)
	for outstanding > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			// Nothing for 200 ms: what is in flight is lost.
			res.lost += int64(outstanding)
			outstanding = 0
			clear(sendTimes[:])
			for outstanding < window && send() {
			}
			continue
		}
		if n < 12 {
			continue
		}
		rid := uint16(buf[0])<<8 | uint16(buf[1])
		t := sendTimes[rid]
		if t == 0 {
			continue // an answer to a query already counted lost
		}
		sendTimes[rid] = 0
		now := time.Now().UnixNano()
		_ = res.hist.RecordValue(max(1, (now-t)/1000))
		res.lastRecv = now
		outstanding--
		send()
	}
	return res
}

// BenchmarkUpdateLatency measures API change -> answer: the time from an
// EndpointSlice update until a query sees the new address. "fake" feeds the
// informers from a fake clientset with the 1,000-service cluster loaded;
// "apiserver" goes through the real API server (etcd, watch) with the spec
// fixture. The bound is 100 ms.
//
//	go test ./dns -run '^$' -bench UpdateLatency -benchtime 200x
func BenchmarkUpdateLatency(b *testing.B) {
	b.Run("fake", func(b *testing.B) {
		client, _ := benchCluster()
		// svc0 is headless: its A records are its endpoints.
		benchUpdateLatency(b, client, "ns0", "svc0-x", "svc0.ns0.svc.cluster.local.")
	})
	b.Run("apiserver", func(b *testing.B) {
		env := testenv.Start(b)
		loadFixture(b, env.Client)
		benchUpdateLatency(b, env.Client, "testns", "hdls1-a", "hdls1.testns.svc.cluster.local.")
	})
}

func benchUpdateLatency(b *testing.B, client kubernetes.Interface, ns, sliceName, name string) {
	s := startSyncedServer(b, Config{Client: client, Pods: PodsDisabled})
	addr := s.Addrs()[0]
	ctx := context.Background()
	hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	idxHist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	// The watcher's hook says when the index changed, which splits the
	// latency into informer delivery and the query that sees it.
	var changedAt atomic.Int64
	s.w.syncMu.Lock()
	s.w.onChange = func() { changedAt.Store(time.Now().UnixNano()) }
	s.w.syncMu.Unlock()
	c := &mdns.Client{Net: "udp", Timeout: time.Second}
	q := new(mdns.Msg)
	q.SetQuestion(name, mdns.TypeA)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		sl, err := client.DiscoveryV1().EndpointSlices(ns).Get(ctx, sliceName, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		want := fmt.Sprintf("10.250.%d.%d", i/250%250, i%250+1)
		sl.Endpoints[0].Addresses = []string{want}
		b.StartTimer()
		start := time.Now()
		if _, err := client.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		for {
			r, _, err := c.Exchange(q, addr)
			if err == nil && hasA(r, want) {
				break
			}
			if time.Since(start) > 5*time.Second {
				b.Fatalf("update %d not visible after 5s", i)
			}
		}
		_ = hist.RecordValue(max(1, time.Since(start).Microseconds()))
		_ = idxHist.RecordValue(max(1, (changedAt.Load()-start.UnixNano())/1000))
	}
	b.StopTimer()
	b.ReportMetric(float64(hist.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99)), "p99-µs")
	b.ReportMetric(float64(hist.Max()), "max-µs")
	b.ReportMetric(float64(idxHist.ValueAtQuantile(50)), "index-p50-µs")
	b.ReportMetric(float64(idxHist.ValueAtQuantile(99)), "index-p99-µs")
}

func hasA(r *mdns.Msg, ip string) bool {
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok && a.A.String() == ip {
			return true
		}
	}
	return false
}

// BenchmarkHandle is the handler alone (no sockets) for a cluster A record.
func BenchmarkHandle(b *testing.B) {
	client, names := benchCluster()
	s := startSyncedServer(b, Config{Client: client, Pods: PodsDisabled})
	var reqs []*mdns.Msg
	for _, n := range names {
		m := new(mdns.Msg)
		m.SetQuestion(n, mdns.TypeA)
		reqs = append(reqs, m)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := s.handle(reqs[i%len(reqs)], true)
		if len(r.Answer) != 1 {
			b.Fatal(r)
		}
	}
}

// BenchmarkServePacket is one UDP query through a read loop's code, without
// the read: "packed" answers from the loop's packed answers, "computed"
// parses and answers from the index every time (a new question each time
// round the 900 names, with the packed answers dropped). The answer is
// written to a loopback socket, so the sendmsg is included.
func BenchmarkServePacket(b *testing.B) {
	client, names := benchCluster()
	s := startSyncedServer(b, Config{Client: client, Pods: PodsDisabled})
	u, err := listenUDP("127.0.0.1:0", false)
	if err != nil {
		b.Fatal(err)
	}
	defer u.c.Close()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	}()
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	var qs [][]byte
	for _, n := range names {
		m := new(mdns.Msg)
		m.SetQuestion(n, mdns.TypeA)
		p, _ := m.Pack()
		qs = append(qs, p)
	}
	var async sync.WaitGroup
	for _, packed := range []bool{true, false} {
		name := "computed"
		if packed {
			name = "packed"
		}
		b.Run(name, func(b *testing.B) {
			l := s.newUDPLoop(u)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if !packed {
					clear(l.cache)
				}
				l.packet(qs[i%len(qs)], to, netip.Addr{}, &async)
			}
		})
	}
}
