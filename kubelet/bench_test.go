package kubelet

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkPodStartup measures created -> Running and Ready for 50 pods created at once on
// one node (real API server, real containerd), and reports p50/p99.
//
//	go test ./kubelet -run '^$' -bench PodStartup -benchtime 1x
func BenchmarkPodStartup(b *testing.B) {
	const pods = 50
	cl := newCluster(b)
	n := cl.node(b, Config{})
	ctx := context.Background()
	var all []time.Duration
	for iter := 0; iter < b.N; iter++ {
		ns := fmt.Sprintf("bench-%d", iter)
		if _, err := cl.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		w, err := cl.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		created := map[string]time.Time{}
		readyAt := map[string]time.Time{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || !running(p) {
					continue
				}
				mu.Lock()
				if _, seen := readyAt[p.Name]; !seen {
					readyAt[p.Name] = time.Now()
				}
				k := len(readyAt)
				mu.Unlock()
				if k == pods {
					return
				}
			}
		}()
		b.StartTimer()
		var wg sync.WaitGroup
		for i := 0; i < pods; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := echoPod(ns, fmt.Sprintf("p%02d", i), n.Name)
				p.UID = ""
				t0 := time.Now()
				if _, err := cl.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				created[p.Name] = t0
				mu.Unlock()
			}()
		}
		wg.Wait()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d pods ready", len(readyAt), pods)
		}
		b.StopTimer()
		w.Stop()
		for name, t0 := range created {
			all = append(all, readyAt[name].Sub(t0))
		}
		// Clean up for the next iteration.
		if err := cl.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{}); err != nil {
			for name := range created {
				cl.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			}
		}
		waitFor(b, 2*time.Minute, "bench pods gone", func() (bool, string) {
			cs, _ := n.RT.List(ctx)
			return len(cs) == 0, fmt.Sprintf("%d containers", len(cs))
		})
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	b.ReportMetric(float64(q(0.50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(q(0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Milliseconds()), "max-ms")
	b.Logf("%d pods: p50 %s p99 %s max %s", len(all), q(0.5), q(0.99), all[len(all)-1])
}
