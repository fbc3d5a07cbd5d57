package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
	"github.com/skiffnet/skiff/kubelet/images"
	"github.com/skiffnet/skiff/kubelet/runtime"
)

// BenchmarkStart measures containerd create and start of the echo image, one container at a
// time and 50 at once, to show how much of pod startup is the container runtime's.
//
//	go test ./kubelet/runtime -run '^$' -bench Start -benchtime 1x
func BenchmarkStart(b *testing.B) {
	privtest.Require(b, privtest.Root|privtest.Containerd)
	ctx := context.Background()
	dir := b.TempDir()
	tarPath, err := images.BuildOne(ctx, images.Echo, dir)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := runtime.New(ctx, privtest.ContainerdSocket(), "skiff-bench-runtime")
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	f, err := os.Open(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rt.Import(ctx, f); err != nil {
		b.Fatal(err)
	}
	f.Close()
	defer func() {
		// Leave nothing in the shared containerd.
		imgs, _ := rt.Images(ctx)
		for _, im := range imgs {
			rt.RemoveImage(ctx, im.Name)
		}
		if err := rt.Client().NamespaceService().Delete(ctx, rt.Namespace()); err != nil {
			b.Logf("delete containerd namespace %s: %v", rt.Namespace(), err)
		}
		rt.RemoveNamespaceCgroups()
	}()
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("concurrent=%d", n), func(b *testing.B) {
			var creates, starts, totals []time.Duration
			var mu sync.Mutex
			for iter := 0; iter < b.N; iter++ {
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						id := fmt.Sprintf("bench-%d-%d", iter, i)
						t0 := time.Now()
						if err := rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: images.Echo.Ref}); err != nil {
							b.Error(err)
							return
						}
						t1 := time.Now()
						if _, err := rt.Start(ctx, id, filepath.Join(dir, id+".log")); err != nil {
							b.Error(err)
							return
						}
						t2 := time.Now()
						mu.Lock()
						creates, starts, totals = append(creates, t1.Sub(t0)), append(starts, t2.Sub(t1)), append(totals, t2.Sub(t0))
						mu.Unlock()
					}()
				}
				wg.Wait()
				b.StopTimer()
				for i := range n {
					id := fmt.Sprintf("bench-%d-%d", iter, i)
					rt.Stop(ctx, id, 0)
					rt.Remove(ctx, id)
				}
				b.StartTimer()
			}
			q := func(d []time.Duration, p float64) float64 {
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(q(creates, 0.5), "create-p50-ms")
			b.ReportMetric(q(starts, 0.5), "start-p50-ms")
			b.ReportMetric(q(totals, 0.5), "p50-ms")
			b.ReportMetric(q(totals, 0.99), "p99-ms")
		})
	}
}
