package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

// BenchmarkLocalCluster measures what issue 9 asks of a 3-node `skiff up`: its time to
// ready, the memory of the server and the agents once idle with the e2e workload, and the
// startup of the pods of a 30-replica Deployment (created -> Ready, as seen by a watch).
//
//	sudo SKIFF_E2E=1 go test -run '^$' -bench LocalCluster -benchtime 1x ./cmd/skiff/internal/localcluster
func BenchmarkLocalCluster(b *testing.B) {
	privtest.Require(b, privtest.Root, privtest.BPF, privtest.Containerd, privtest.Cgroup2)
	c := startCluster(b, "bench", "172.30.59.0/24")
	b.ReportMetric(c.ready.Seconds(), "s-to-ready")

	c.mustSkiff("apply", "-f", filepath.Join(c.root, "testdata", "e2e", "web.yaml"))
	c.waitReady("app=web", 3, 2*time.Minute)
	time.Sleep(20 * time.Second) // idle: let the daemons' caches and GC settle
	mem := c.daemonMemory()
	for _, m := range mem {
		b.Logf("%-8s RSS %5.1f MB (anon %5.1f, file %5.1f)  PSS %5.1f MB", m.name, m.rss, m.anon, m.rss-m.anon, m.pss)
	}
	b.ReportMetric(mem[0].rss, "MB-server-RSS")
	b.ReportMetric(slices.MaxFunc(mem[1:], func(a, b daemonMem) int { return int(a.rss*1000 - b.rss*1000) }).rss, "MB-agent-max-RSS")

	for i := 0; i < b.N; i++ {
		lat := c.podStartup(b, fmt.Sprintf("burst-%d", i), 30)
		b.ReportMetric(float64(quantile(lat, 0.5).Milliseconds()), "ms-pod-p50")
		b.ReportMetric(float64(quantile(lat, 0.99).Milliseconds()), "ms-pod-p99")
		b.ReportMetric(float64(quantile(lat, 1).Milliseconds()), "ms-pod-max")
	}
	for _, m := range c.daemonMemory() {
		b.Logf("after the burst: %-8s RSS %5.1f MB (anon %5.1f), peak %5.1f MB", m.name, m.rss, m.anon, m.hwm)
	}
}

type daemonMem struct {
	name                string
	rss, anon, pss, hwm float64 // MB
}

// daemonMemory reads the server's and the agents' memory from /proc, server first.
func (c *e2eCluster) daemonMemory() []daemonMem {
	var out []daemonMem
	for _, name := range []string{"server", "agent-1", "agent-2", "agent-3"} {
		b, err := os.ReadFile(filepath.Join(c.dataDir, "run", name+".pid"))
		if err != nil {
			c.t.Fatalf("%s: %v", name, err)
		}
		pid := strings.TrimSpace(string(b))
		m := daemonMem{name: name}
		m.rss, m.anon, m.hwm = statusKB(c.t, pid, "VmRSS")/1024, statusKB(c.t, pid, "RssAnon")/1024, statusKB(c.t, pid, "VmHWM")/1024
		if r, err := os.ReadFile("/proc/" + pid + "/smaps_rollup"); err == nil {
			m.pss = field(string(r), "Pss") / 1024
		}
		out = append(out, m)
	}
	return out
}

func statusKB(t testing.TB, pid, key string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	return field(string(b), key)
}

// field reads "Key:   123 kB" from a /proc file.
func field(s, key string) float64 {
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseFloat(f[0], 64)
				return n
			}
		}
	}
	return 0
}

// podStartup creates a Deployment of n replicas (no readiness probe: Ready = containers
// started) and returns each pod's time from its creation to Ready, both as seen by a watch
// opened before the Deployment; then it deletes the Deployment and waits for its pods to go.
func (c *e2eCluster) podStartup(t testing.TB, name string, n int) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pods := c.client.CoreV1().Pods("default")
	sel := "app=" + name
	w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(n)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(1)),
					Containers: []corev1.Container{{
						Name: "echo", Image: "skiff.local/echo:latest", ImagePullPolicy: corev1.PullNever,
					}},
				},
			},
		},
	}
	deps := c.client.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created := map[string]time.Time{}
	var lat []time.Duration
	for len(lat) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("pod watch ended after %d of %d pods ready", len(lat), n)
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			at := time.Now()
			uid := string(p.UID)
			if _, seen := created[uid]; !seen {
				created[uid] = at
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && !created[uid].IsZero() {
					lat = append(lat, at.Sub(created[uid]))
					created[uid] = time.Time{} // counted
				}
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d pods ready within 3m", len(lat), n)
		}
	}
	slices.Sort(lat)
	t.Logf("%d pods created -> Ready: p50 %s p99 %s max %s", n, quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 1))
	if err := deps.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually("burst pods gone", 2*time.Minute, func() (bool, string) {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel})
		return err == nil && len(l.Items) == 0, fmt.Sprint(err)
	})
	return lat
}

// quantile of sorted durations.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}
