package storage_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/skiffnet/skiff/controlplane/storage"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// benchPod is a pod of realistic size (about 1.5 KB of JSON).
func benchPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: types.UID("0b6f7c1e-4d1a-4b7e-9f3c-" + name),
			Labels:      map[string]string{"app": "web", "tier": "frontend", "pod-template-hash": "5d4f8c7b9"},
			Annotations: map[string]string{"skiff.io/created-by": "benchmark"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d4f8c7b9", UID: "6f1d2a3b-aaaa-bbbb-cccc-0123456789ab",
			}},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{
				Name: "web", Image: "registry.local/web:1.27.3",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "MODE", Value: "production"}, {Name: "LOG_LEVEL", Value: "info"}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
				}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}}},
			}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.17", HostIP: "10.0.0.2",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func benchStore(b *testing.B) storage.Interface {
	return storage.New(openEmbedded(b).Client, storage.DefaultCodec())
}

// runClients runs total operations spread over clients goroutines, recording each latency.
func runClients(b *testing.B, clients, total int, op func(i int) error) *hdrhistogram.Histogram {
	hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					break
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
				local.RecordValue(time.Since(t0).Microseconds())
			}
			mu.Lock()
			hist.Merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return hist
}

// cpuTime is the CPU time this process (client and embedded etcd) has used so far. On a
// shared machine it says more than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func reportLatency(b *testing.B, h *hdrhistogram.Histogram) {
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1000, "p99-ms")
}

// BenchmarkCreate: 50 concurrent clients creating pods in embedded etcd.
func BenchmarkCreate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	pod := benchPod("bench", "x")
	b.ResetTimer()
	cpu0 := cpuTime()
	h := runClients(b, 50, b.N, func(i int) error {
		p := pod.DeepCopy()
		p.Name = fmt.Sprintf("p%d", i)
		return s.Create(ctx, "/registry/pods/bench/"+p.Name, p, &corev1.Pod{}, 0)
	})
	b.StopTimer()
	reportCPU(b, cpu0)
	reportLatency(b, h)
}

// BenchmarkGet: 50 concurrent clients reading 1000 pods.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	const n = 1000
	runClients(b, 50, n, func(i int) error {
		return s.Create(ctx, fmt.Sprintf("/registry/pods/bench/p%d", i), benchPod("bench", fmt.Sprintf("p%d", i)), nil, 0)
	})
	b.ResetTimer()
	cpu0 := cpuTime()
	h := runClients(b, 50, b.N, func(i int) error {
		return s.Get(ctx, fmt.Sprintf("/registry/pods/bench/p%d", i%n), &corev1.Pod{})
	})
	b.StopTimer()
	reportCPU(b, cpu0)
	reportLatency(b, h)
}

// BenchmarkList10k: one list of 10,000 pods, decoded into a PodList.
func BenchmarkList10k(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	const n = 10000
	runClients(b, 50, n, func(i int) error {
		return s.Create(ctx, fmt.Sprintf("/registry/pods/bench/p%05d", i), benchPod("bench", fmt.Sprintf("p%05d", i)), nil, 0)
	})
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		var l corev1.PodList
		if err := s.List(ctx, "/registry/pods/", storage.ListOptions{}, &l); err != nil {
			b.Fatal(err)
		}
		if len(l.Items) != n {
			b.Fatalf("listed %d pods, want %d", len(l.Items), n)
		}
	}
	reportCPU(b, cpu0)
}

// BenchmarkWatchFanout100: one write seen by 100 watchers; ns/op is the time until the last
// watcher has the event.
func BenchmarkWatchFanout100(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	const watchers = 100
	var got sync.WaitGroup
	var ws []watch.Interface
	for range watchers {
		w, err := s.Watch(ctx, "/registry/pods/", storage.ListOptions{ResourceVersion: "0"})
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, w)
		go func() {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Added {
					got.Done()
				}
			}
		}()
	}
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()
	pod := benchPod("bench", "x")
	h := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		got.Add(watchers)
		p := pod.DeepCopy()
		p.Name = fmt.Sprintf("p%d", i)
		t0 := time.Now()
		if err := s.Create(ctx, "/registry/pods/bench/"+p.Name, p, nil, 0); err != nil {
			b.Fatal(err)
		}
		got.Wait()
		h.RecordValue(time.Since(t0).Microseconds())
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	reportLatency(b, h)
	b.ReportMetric(float64(watchers*b.N)/b.Elapsed().Seconds(), "events/s")
}
