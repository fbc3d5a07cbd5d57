package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

const benchPods = 5000

func benchPod(i int) *corev1.Pod {
	t := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%05d", i), Namespace: "default", UID: types.UID(fmt.Sprintf("bench-uid-%d", i)),
			Labels:          map[string]string{"app": fmt.Sprintf("app-%d", i%50)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: fmt.Sprintf("rs-%d", i%50), UID: types.UID(fmt.Sprintf("rs-%d", i%50)), Controller: &t}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}},
	}
}

func benchNode(i int) *corev1.Node {
	return mkNode(fmt.Sprintf("node-%04d", i), "64Gi", func(n *corev1.Node) {
		n.Status.Allocatable[corev1.ResourceCPU] = resource.MustParse("64")
	})
}

// BenchmarkScheduler is the scheduling core (filters, scores, assume) over
// the informer cache: 5,000 pending pods onto 100 or 1,000 nodes.
func BenchmarkScheduler(b *testing.B) {
	for _, nodes := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			pods := make([]*corev1.Pod, benchPods)
			for i := range pods {
				pods[i] = benchPod(i)
			}
			var total time.Duration
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				s := testScheduler()
				for i := 0; i < nodes; i++ {
					s.cache.setNode(benchNode(i))
				}
				b.StartTimer()
				start := time.Now()
				for _, p := range pods {
					n, err := s.schedule(p)
					if err != nil {
						b.Fatal(err)
					}
					s.cache.place(p, n, true)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(benchPods*b.N)/total.Seconds(), "pods/s")
		})
	}
}

// BenchmarkSchedulerAPI runs the whole scheduler (informers, queue, binding
// through pods/binding) against the real API server on embedded etcd:
// time from start until all 5,000 pre-created pending pods are bound.
func BenchmarkSchedulerAPI(b *testing.B) {
	for _, nodes := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			if testing.Short() {
				b.Skip("needs a real API server")
			}
			env := testenv.Start(b)
			cfg := rest.CopyConfig(env.Config)
			cfg.QPS, cfg.Burst = -1, 0
			cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
			cl, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			parallel(nodes, func(i int) error {
				n := benchNode(i)
				st := n.Status
				created, err := cl.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
				if err != nil {
					return err
				}
				created.Status = st
				_, err = cl.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
				return err
			}, b)
			var rate float64
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				ns := fmt.Sprintf("bench%d", it)
				if _, err := cl.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				cstart := time.Now()
				parallel(benchPods, func(i int) error {
					p := benchPod(i)
					p.Namespace, p.UID, p.OwnerReferences = ns, "", nil
					_, err := cl.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
					return err
				}, b)
				b.Logf("created %d pods at %.0f pods/s (the API's write rate, for comparison)", benchPods, float64(benchPods)/time.Since(cstart).Seconds())
				b.StartTimer()
				sctx, cancel := context.WithCancel(ctx)
				start := time.Now()
				done := make(chan struct{})
				f := newFactory(cl)
				s := New(cl, f, Options{Logger: quietLogger()})
				go func() {
					defer close(done)
					f.Start(sctx.Done())
					_ = s.Run(sctx)
				}()
				for s.Scheduled() < benchPods {
					if time.Since(start) > 5*time.Minute {
						b.Fatalf("only %d of %d pods bound", s.Scheduled(), benchPods)
					}
					time.Sleep(5 * time.Millisecond)
				}
				el := time.Since(start)
				rate = float64(benchPods) / el.Seconds()
				cancel()
				<-done
				b.StopTimer()
				bgDelete(cl, ns)
			}
			b.ReportMetric(rate, "pods/s")
		})
	}
}

func parallel(n int, fn func(int) error, b *testing.B) {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
