package dns

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
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

// BenchmarkClusterA is the load generator: DNS_BENCH_SOCKETS UDP sockets
// (default 4), each keeping DNS_BENCH_WINDOW queries in flight (default 8),
// asking A records of random ClusterIP services of a 1,000-service,
// 10,000-endpoint cluster. It reports qps and latency percentiles (send to
// receive, so the client's own queueing counts).
//
//	go test ./dns -run '^$' -bench ClusterA -benchtime 300000x
func BenchmarkClusterA(b *testing.B) {
	client, names := benchCluster()
	s := startSyncedServer(b, Config{Client: client, Pods: PodsDisabled})
	addr := s.Addrs()[0]
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
	window := envInt("DNS_BENCH_WINDOW", 8)
	hist := hdrhistogram.New(1, int64(time.Second/time.Microsecond), 3)
	var histMu sync.Mutex
	var sent, lost atomic.Int64
	total := int64(b.N)

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range sockets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, l := runSocket(b, addr, packets, g, window, &sent, total)
			histMu.Lock()
			hist.Merge(h)
			histMu.Unlock()
			lost.Add(l)
		}()
	}
	wg.Wait()
	b.StopTimer()
	// Until the last answer, not until the receivers noticed the end.
	elapsed := time.Unix(0, lastRecv.Load()).Sub(start)

	got := hist.TotalCount()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "qps")
	b.ReportMetric(float64(hist.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99)), "p99-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99.9)), "p99.9-µs")
	b.ReportMetric(float64(lost.Load()), "lost")
}

// runSocket keeps window queries in flight on one socket until the shared
// budget is used up, and returns the latency histogram (µs) and losses.
// lastRecv is when the newest answer arrived (unix ns).
var lastRecv atomic.Int64

func runSocket(b *testing.B, addr string, packets [][]byte, seed, window int, sent *atomic.Int64, total int64) (*hdrhistogram.Histogram, int64) {
	h := hdrhistogram.New(1, int64(time.Second/time.Microsecond), 3)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		b.Error(err)
		return h, 0
	}
	defer conn.Close()
	var sendTimes [65536]int64 // by query ID, unix ns
	slots := make(chan struct{}, window)
	done := make(chan struct{})
	var outstanding atomic.Int64
	var sendingDone atomic.Bool
	var lost int64

	go func() { // receiver
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				if outstanding.Load() == 0 && sendingDone.Load() {
					return
				}
				// Timed out: count what is in flight as lost and free the
				// slots (the sender is blocked on them, so nothing races).
				for j := range sendTimes {
					atomic.StoreInt64(&sendTimes[j], 0)
				}
				for outstanding.Load() > 0 {
					outstanding.Add(-1)
					lost++
					<-slots
				}
				if sendingDone.Load() {
					return
				}
				continue
			}
			if n < 12 {
				continue
			}
			id := uint16(buf[0])<<8 | uint16(buf[1])
			if t := atomic.SwapInt64(&sendTimes[id], 0); t != 0 {
				now := time.Now().UnixNano()
				_ = h.RecordValue(max(1, (now-t)/1000))
				lastRecv.Store(now)
				<-slots
				if outstanding.Add(-1) == 0 && sendingDone.Load() {
					return
				}
			}
		}
	}()

	pkt := make([]byte, 512)
	var id uint16 = uint16(seed * 7919)
	i := seed * 131
	for sent.Add(1) <= total {
		slots <- struct{}{}
		p := packets[i%len(packets)]
		i += 7
		n := copy(pkt, p)
		id++
		pkt[0], pkt[1] = byte(id>>8), byte(id)
		atomic.StoreInt64(&sendTimes[id], time.Now().UnixNano())
		outstanding.Add(1)
		if _, err := conn.Write(pkt[:n]); err != nil {
			b.Error(err)
			break
		}
	}
	sendingDone.Store(true)
	<-done
	return h, lost
}

// BenchmarkUpdateLatency measures API change -> answer: the time from an
// EndpointSlice update (fake clientset, informers) until a query sees the
// new address, with the 1,000-service cluster loaded.
//
//	go test ./dns -run '^$' -bench UpdateLatency -benchtime 200x
func BenchmarkUpdateLatency(b *testing.B) {
	client, _ := benchCluster()
	s := startSyncedServer(b, Config{Client: client, Pods: PodsDisabled})
	addr := s.Addrs()[0]
	ctx := context.Background()
	name := "svc0.ns0.svc.cluster.local."
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
		sl, err := client.DiscoveryV1().EndpointSlices("ns0").Get(ctx, "svc0-x", metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		want := fmt.Sprintf("10.250.%d.%d", i/250%250, i%250+1)
		sl.Endpoints[0].Addresses = []string{want}
		start := time.Now()
		if _, err := client.DiscoveryV1().EndpointSlices("ns0").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
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
