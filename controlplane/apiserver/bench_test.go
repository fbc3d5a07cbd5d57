package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

const benchClients = 50

// benchClient is a clientset for load generation: client-go's defaults (one shared HTTP/2
// connection, keep-alive, JSON) but without the client-side rate limiter, which would
// otherwise measure the token bucket (QPS 1000 in the admin config) instead of the server.
func benchClient(b *testing.B, env *testenv.Env) kubernetes.Interface {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// runConcurrent spreads b.N calls of op over 50 goroutines and reports p50/p99 in ms.
func runConcurrent(b *testing.B, op func(i int) error) {
	var mu sync.Mutex
	h := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	var n atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	cpu0 := cpuTime()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(n.Add(1)) - 1
				if i >= b.N {
					return
				}
				start := time.Now()
				if err := op(i); err != nil {
					failed.Store(err)
					return
				}
				d := time.Since(start)
				mu.Lock()
				h.RecordValue(d.Microseconds())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1000, "p50_ms")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1000, "p99_ms")
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// cpuTime is the CPU time this process (client, API server and embedded etcd) has used: on
// a shared machine it says more than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkCreate50Clients(b *testing.B) {
	env := testenv.Start(b)
	client := benchClient(b, env)
	ctx := context.Background()
	run := time.Now().UnixNano()
	runConcurrent(b, func(i int) error {
		_, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("b%d-%d", run, i)},
			Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		return err
	})
}

func BenchmarkCreatePods50Clients(b *testing.B) {
	env := testenv.Start(b)
	client := benchClient(b, env)
	ctx := context.Background()
	run := time.Now().UnixNano()
	runConcurrent(b, func(i int) error {
		_, err := client.CoreV1().Pods("default").Create(ctx, pod(fmt.Sprintf("b%d-%d", run, i)), metav1.CreateOptions{})
		return err
	})
}

func BenchmarkGet50Clients(b *testing.B) {
	env := testenv.Start(b)
	client := benchClient(b, env)
	ctx := context.Background()
	for i := range 100 {
		client.CoreV1().Pods("default").Create(ctx, pod(fmt.Sprintf("g%d", i)), metav1.CreateOptions{})
	}
	runConcurrent(b, func(i int) error {
		_, err := client.CoreV1().Pods("default").Get(ctx, fmt.Sprintf("g%d", i%100), metav1.GetOptions{})
		return err
	})
}

func BenchmarkList10000Pods(b *testing.B) {
	env := testenv.Start(b)
	client := benchClient(b, env)
	ctx := context.Background()
	var wg sync.WaitGroup
	var n atomic.Int64
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := n.Add(1)
				if i > 10000 {
					return
				}
				if _, err := client.CoreV1().Pods("default").Create(ctx, pod(fmt.Sprintf("l%05d", i)), metav1.CreateOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 10000 {
			b.Fatalf("list: %v (%d)", err, len(l.Items))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
}

// BenchmarkWatchFanout100 measures how long one change takes to reach all of 100 watchers.
func BenchmarkWatchFanout100(b *testing.B) {
	env := testenv.Start(b)
	client := benchClient(b, env)
	ctx := context.Background()
	l, err := client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var ws []watch.Interface
	for range 100 {
		w, err := client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		ws = append(ws, w)
	}
	h := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w%d", i)}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		for _, w := range ws {
			select {
			case <-w.ResultChan():
			case <-time.After(10 * time.Second):
				b.Fatal("watcher got no event in 10s")
			}
		}
		h.RecordValue(time.Since(start).Microseconds())
	}
	b.StopTimer()
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1000, "p50_all100_ms")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1000, "p99_all100_ms")
}
