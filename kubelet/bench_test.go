package kubelet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// BenchmarkPodStartup measures created -> Running and Ready of pods on one node (real API
// server, real containerd) in three loads:
//
//   - burst: all 50 created at once;
//   - paced: created at a steady rate, as Kubernetes' density test does, so each pod's
//     latency is the agent's and the runtime's work for it rather than the queue in front:
//     50 pods at 5 pods/s, and 30 at 2 pods/s.
//
// Each reports p50/p99/max, the CPU time spent per pod (by containerd, shims, runc and the
// containers' runc init; and by this process: agent, API server, etcd), which compares runs
// on a shared machine better than latency does, and the p50 and p99 of every step of the
// agent's path, from the agent's own trace points:
//
//	watch   API create -> the agent's informer has the pod
//	net     netns, veth, address, routes
//	prep    volumes and /etc files
//	create  env, mounts, waiting for one of the node's start slots, image, OCI spec,
//	        containerd container and snapshot
//	start   containerd task create + start (shim, runc create, runc start)
//	status  task running -> status with Ready=True written to the API
//	seen    status written -> the benchmark's watch sees it
//
// Run it with
//
//	SKIFF_E2E=1 go test ./kubelet -run '^$' -bench PodStartup -benchtime 1x
func BenchmarkPodStartup(b *testing.B) {
	cl := newCluster(b)
	tr := newStartupTrace()
	n := cl.node(b, Config{trace: tr.record})
	b.Run("burst", func(b *testing.B) { benchStartup(b, cl, n, tr, 50, 0) })
	b.Run("paced-5ps", func(b *testing.B) { benchStartup(b, cl, n, tr, 50, 200*time.Millisecond) })
	// Below what the runtime can do on a small node: the latency of one pod on its own.
	b.Run("paced-2ps", func(b *testing.B) { benchStartup(b, cl, n, tr, 30, 500*time.Millisecond) })
}

// startupTrace keeps the first time of each step of each pod.
type startupTrace struct {
	mu    sync.Mutex
	steps map[types.UID]map[string]time.Time
}

func newStartupTrace() *startupTrace {
	return &startupTrace{steps: map[types.UID]map[string]time.Time{}}
}

func (s *startupTrace) record(uid types.UID, step string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.steps[uid]
	if m == nil {
		m = map[string]time.Time{}
		s.steps[uid] = m
	}
	if _, ok := m[step]; !ok {
		m[step] = at
	}
}

func (s *startupTrace) get(uid types.UID) map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	for k, v := range s.steps[uid] {
		out[k] = v
	}
	return out
}

// benchStartup creates pods pods, every interval (0 = all at once), and measures each one's
// created -> Ready.
func benchStartup(b *testing.B, cl *testCluster, n *testNode, tr *startupTrace, pods int, interval time.Duration) {
	ctx := context.Background()
	var total []time.Duration
	var runtimeCPUTotal, selfCPUTotal time.Duration
	phases := map[string][]time.Duration{}
	for iter := 0; iter < b.N; iter++ {
		ns := fmt.Sprintf("bench-%s-%d", strings.ReplaceAll(strings.ToLower(b.Name()[strings.LastIndex(b.Name(), "/")+1:]), "_", "-"), iter)
		if _, err := cl.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		w, err := cl.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		created := map[string]time.Time{}
		uids := map[string]types.UID{}
		readyAt := map[string]time.Time{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || !running(p) {
					continue
				}
				now := time.Now()
				mu.Lock()
				if _, seen := readyAt[p.Name]; !seen {
					readyAt[p.Name] = now
				}
				k := len(readyAt)
				mu.Unlock()
				if k == pods {
					return
				}
			}
		}()
		_, ctrd0 := runtimeCPU(n.RT.Namespace())
		self0 := selfCPU()
		b.StartTimer()
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < pods; i++ {
			if interval > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := echoPod(ns, fmt.Sprintf("p%02d", i), n.Name)
				p.UID = ""
				t0 := time.Now()
				out, err := cl.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				created[p.Name] = t0
				uids[p.Name] = out.UID
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
		parts := runtimeCPUParts(n.RT.Namespace())
		b.Logf("CPU of %d pods: shims %s, runc %s, containers %s, containerd %s", pods, parts.shim, parts.runc, parts.ctr, parts.containerd-ctrd0)
		shims, ctrd1 := parts.shim+parts.runc+parts.ctr, parts.containerd
		runtimeCPUTotal += shims + ctrd1 - ctrd0
		selfCPUTotal += selfCPU() - self0
		w.Stop()
		for name, t0 := range created {
			total = append(total, readyAt[name].Sub(t0))
			st := tr.get(uids[name])
			prev := t0
			for _, ph := range []struct{ name, step string }{
				{"watch", stepSeen}, {"net", stepNetwork}, {"prep", stepPrepared},
				{"create", stepCreated}, {"start", stepStarted}, {"status", stepReady},
			} {
				at, ok := st[ph.step]
				if !ok {
					continue
				}
				phases[ph.name] = append(phases[ph.name], at.Sub(prev))
				prev = at
			}
			phases["seen"] = append(phases["seen"], readyAt[name].Sub(prev))
		}
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
	q := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		d = append([]time.Duration(nil), d...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[int(p*float64(len(d)-1)+0.5)]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(q(total, 0.50)), "p50-ms")
	b.ReportMetric(ms(q(total, 0.99)), "p99-ms")
	b.ReportMetric(ms(q(total, 1)), "max-ms")
	// CPU per pod: containerd, the shims with the runc runs they reaped and the containers'
	// first process (runc init); and this process (agent, API server, etcd).
	b.ReportMetric(ms(runtimeCPUTotal)/float64(len(total)), "runtime-cpu-ms/pod")
	b.ReportMetric(ms(selfCPUTotal)/float64(len(total)), "agent+api-cpu-ms/pod")
	// Benchmark logs are cut after 10 lines: keep it to three.
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d pods: created->Ready p50 %s p99 %s max %s; CPU per pod: runtime %s, agent+API server %s\n", len(total),
		q(total, 0.5).Round(time.Millisecond), q(total, 0.99).Round(time.Millisecond), q(total, 1).Round(time.Millisecond),
		(runtimeCPUTotal / time.Duration(len(total))).Round(time.Millisecond), (selfCPUTotal / time.Duration(len(total))).Round(time.Millisecond))
	sb.WriteString("steps p50/p99:")
	for _, name := range []string{"watch", "net", "prep", "create", "start", "status", "seen"} {
		fmt.Fprintf(&sb, " %s %s/%s", name, q(phases[name], 0.5).Round(100*time.Microsecond), q(phases[name], 0.99).Round(100*time.Microsecond))
		b.ReportMetric(ms(q(phases[name], 0.5)), name+"-p50-ms")
	}
	b.Log(sb.String())
}
