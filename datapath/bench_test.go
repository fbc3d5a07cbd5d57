package datapath

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// benchServices builds n ClusterIP Services with b backends each (SKIFF_BENCH_SERVICES
// overrides n, e.g. 100000).
func benchServices(n, b int) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	if s := os.Getenv("SKIFF_BENCH_SERVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ports := []svcPort{{name: "http", port: 80, target: 8080}}
	svcs := make([]*corev1.Service, n)
	slices := make([]*discoveryv1.EndpointSlice, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%d", i)
		vip := fmt.Sprintf("10.%d.%d.%d", 96+i>>16, (i>>8)&0xff, i&0xff)
		svcs[i] = makeService("bench", name, vip, ports...)
		eps := make([]ep, b)
		for j := range eps {
			k := i*b + j
			eps[j] = ep{addr: fmt.Sprintf("10.%d.%d.%d", 128+k>>16, (k>>8)&0xff, k&0xff)}
		}
		slices[i] = makeSlice("bench", name, name+"-1", ports, eps...)
	}
	return svcs, slices
}

func benchDatapath(b *testing.B, n, backends int) *Datapath {
	privtest.Require(b, privtest.Root, privtest.BPF)
	if s := os.Getenv("SKIFF_BENCH_SERVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	return newTestDatapath(b, nil, Config{MaxServices: n + 1024, MaxBackends: n*backends + 1024})
}

func reportMemory(b *testing.B, d *Datapath) {
	mem, err := d.MapMemory()
	if err != nil {
		b.Fatal(err)
	}
	var total uint64
	names := make([]string, 0, len(mem))
	for name, v := range mem {
		total += v
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b.Logf("map %-10s %8.1f MiB", name, float64(mem[name])/(1<<20))
	}
	b.ReportMetric(float64(total)/(1<<20), "MiB-maps")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProgram10kServices programs 10,000 Services x 10 backends into empty maps.
func BenchmarkProgram10kServices(b *testing.B) {
	d := benchDatapath(b, 10000, 10)
	svcs, slices := benchServices(10000, 10)
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		c0 := cpuTime()
		if err := d.Sync(svcs, slices); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		if i == b.N-1 {
			reportMemory(b, d)
		}
		if err := d.Sync(nil, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	// The machine is shared: process CPU time (user+sys, all threads) is the steadier figure.
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkUpdateOneService changes one backend of one Service among 10,000.
func BenchmarkUpdateOneService(b *testing.B) {
	d := benchDatapath(b, 10000, 10)
	svcs, slices := benchServices(10000, 10)
	if err := d.Sync(svcs, slices); err != nil {
		b.Fatal(err)
	}
	alt := slices[5000].DeepCopy()
	alt.Endpoints[3].Addresses = []string{"10.250.0.1"}
	variants := []*discoveryv1.EndpointSlice{alt, slices[5000]}
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := d.UpsertService(svcs[5000], variants[i%2:i%2+1]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
	reportMemory(b, d)
}
