package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffnet/skiff/controlplane/scheduler"
	"github.com/skiffnet/skiff/datapath"
	"github.com/skiffnet/skiff/datapath/netns"
)

// ControlPlaneConfig is `skiff bench controlplane`.
type ControlPlaneConfig struct {
	Objects  int // ConfigMaps created (then listed); default 1000
	Pods     int // pods the scheduler binds; default 500
	Nodes    int // fake nodes for the scheduler, and simulated datapath nodes (max 4); default 3
	Changes  int // Service+EndpointSlice changes timed to the maps; default 20
	Progress io.Writer
}

type latStat struct {
	n             int64
	p50, p99, max float64 // ms
	rate          float64 // per second
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, int64(60*time.Second), 3) }

func stat(h *hdrhistogram.Histogram, d time.Duration) latStat {
	return latStat{n: h.TotalCount(), p50: float64(h.ValueAtQuantile(50)) / 1e6, p99: float64(h.ValueAtQuantile(99)) / 1e6,
		max: float64(h.Max()) / 1e6, rate: float64(h.TotalCount()) / d.Seconds()}
}

// RunControlPlane starts a real control plane (embedded etcd + API server) on loopback and
// measures API create and list latency, the scheduler's binding rate, and network programming
// latency: from a Service+EndpointSlice write in the API to the entries in the BPF maps of every
// simulated node (a netns with its own datapath and reconciler; needs root and BPF).
func RunControlPlane(ctx context.Context, cfg ControlPlaneConfig) (string, error) {
	if cfg.Objects == 0 {
		cfg.Objects = 1000
	}
	if cfg.Pods == 0 {
		cfg.Pods = 500
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Changes == 0 {
		cfg.Changes = 20
	}
	if cfg.Objects < 1 || cfg.Pods < 1 || cfg.Nodes < 1 || cfg.Changes < 1 {
		return "", errors.New("--objects, --pods, --nodes and --changes must be positive")
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	p := func(f string, a ...any) { fmt.Fprintf(cfg.Progress, "controlplane: "+f+"\n", a...) }
	srv, client, stop, err := startAPIServer(ctx)
	if err != nil {
		return "", err
	}
	defer stop()
	p("API server ready at %s", srv.URL())
	const ns = "bench-cp"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create namespace: %w", err)
	}

	var b strings.Builder
	b.WriteString("# Control-plane benchmark\n\nReal API server + embedded etcd on loopback, one client at a time unless noted.\n\n")
	b.WriteString("| measurement | count | p50 ms | p99 ms | max ms | rate /s |\n|---|---|---|---|---|---|\n")
	row := func(name string, s latStat) {
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f | %.2f | %.0f |\n", name, s.n, s.p50, s.p99, s.max, s.rate)
	}

	// 1. API create and list.
	h := newHist()
	start := time.Now()
	for i := 0; i < cfg.Objects; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%06d", i)}, Data: map[string]string{"k": strings.Repeat("v", 64)}}
		t0 := time.Now()
		if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("create configmap %d: %w", i, err)
		}
		h.RecordValue(int64(time.Since(t0)))
	}
	row("create ConfigMap", stat(h, time.Since(start)))
	h = newHist()
	start = time.Now()
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		l, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", fmt.Errorf("list configmaps: %w", err)
		}
		if len(l.Items) < cfg.Objects {
			return "", fmt.Errorf("list returned %d configmaps, want %d", len(l.Items), cfg.Objects)
		}
		h.RecordValue(int64(time.Since(t0)))
	}
	row(fmt.Sprintf("list %d ConfigMaps", cfg.Objects), stat(h, time.Since(start)))
	p("create/list done")

	// 2. Scheduler: pods/s bound onto fake nodes.
	s, err := benchScheduler(ctx, client, ns, cfg)
	if err != nil {
		return "", fmt.Errorf("scheduler: %w", err)
	}
	row(fmt.Sprintf("schedule %d pods on %d nodes (create to bound)", cfg.Pods, cfg.Nodes), s)
	p("scheduler done: %.0f pods/s", s.rate)

	// 3. Network programming latency.
	np, ep, note, err := benchProgramming(ctx, client, ns, cfg)
	switch {
	case err != nil:
		return "", fmt.Errorf("network programming: %w", err)
	case note != "":
		fmt.Fprintf(&b, "| network programming latency | – | – | – | – | – |\n\n%s\n", note)
	default:
		row(fmt.Sprintf("network programming: Service+EndpointSlice write to maps on all %d nodes", min(cfg.Nodes, 4)), np)
		row(fmt.Sprintf("network programming: endpoint added to an EndpointSlice, to maps on all %d nodes", min(cfg.Nodes, 4)), ep)
		p("network programming done: p50 %.1f ms new service, %.1f ms endpoint change", np.p50, ep.p50)
	}
	return b.String(), nil
}

func benchScheduler(ctx context.Context, client kubernetes.Interface, ns string, cfg ControlPlaneConfig) (latStat, error) {
	for i := 0; i < cfg.Nodes; i++ {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-node-%d", i),
			Labels: map[string]string{"kubernetes.io/hostname": fmt.Sprintf("bench-node-%d", i)}}}
		created, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return latStat{}, fmt.Errorf("create node: %w", err)
		}
		rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000"), corev1.ResourceMemory: resource.MustParse("4Ti"),
			corev1.ResourcePods: resource.MustParse("10000")}
		created.Status = corev1.NodeStatus{Capacity: rl, Allocatable: rl,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}}
		if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return latStat{}, fmt.Errorf("node status: %w", err)
		}
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go scheduler.Run(sctx, client, scheduler.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	created := make([]time.Time, cfg.Pods)
	var mu sync.Mutex
	start := time.Now()
	for i := 0; i < cfg.Pods; i++ {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}}}}}}
		mu.Lock()
		created[i] = time.Now()
		mu.Unlock()
		if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return latStat{}, fmt.Errorf("create pod: %w", err)
		}
	}
	h := newHist()
	seen := map[string]bool{}
	deadline := time.Now().Add(5 * time.Minute)
	for len(seen) < cfg.Pods {
		if time.Now().After(deadline) {
			return latStat{}, fmt.Errorf("only %d of %d pods bound after 5 minutes", len(seen), cfg.Pods)
		}
		l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return latStat{}, err
		}
		now := time.Now()
		for _, pod := range l.Items {
			if pod.Spec.NodeName != "" && !seen[pod.Name] {
				seen[pod.Name] = true
				var i int
				fmt.Sscanf(pod.Name, "pod-%05d", &i)
				h.RecordValue(int64(now.Sub(created[i]))) // upper bound: polled
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return stat(h, time.Since(start)), nil
}

// benchProgramming simulates up to 4 nodes, each a netns with its own datapath (own pin dir)
// and reconciler following the API, and times two changes to the moment every node's maps
// show them: a new Service+EndpointSlice (the frontend with all its backends), and one more
// endpoint written into that EndpointSlice.
func benchProgramming(ctx context.Context, client kubernetes.Interface, ns string, cfg ControlPlaneConfig) (created, changed latStat, note string, err error) {
	if os.Geteuid() != 0 {
		return latStat{}, latStat{}, "Network programming latency needs root and BPF (simulated nodes are netns with their own datapath): skipped.", nil
	}
	id := RandomID()
	type node struct {
		ns *netns.NS
		dp *datapath.Datapath
	}
	var nodes []node
	defer func() {
		for _, n := range nodes {
			n.ns.Do(func() error { return n.dp.Remove() })
			n.ns.Delete()
		}
	}()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	for i := 0; i < min(cfg.Nodes, 4); i++ {
		nns, err := netns.Create(fmt.Sprintf("skbcp%s%d", id, i))
		if err != nil {
			return latStat{}, latStat{}, "", err
		}
		var dp *datapath.Datapath
		err = nns.Do(func() error {
			var err error
			dp, err = datapath.New(datapath.Config{PinDir: fmt.Sprintf("/sys/fs/bpf/skiff-bench-%s%d", id, i),
				NodeIPs: []net.IP{net.IPv4(10, 0, 0, byte(2+i))}, NodeName: fmt.Sprintf("bench-node-%d", i),
				MaxServices: 4096, MaxBackends: 4096, MaxConntrack: 4096})
			return err
		})
		if err != nil {
			nns.Delete()
			return latStat{}, latStat{}, "", fmt.Errorf("datapath on simulated node %d: %w", i, err)
		}
		nodes = append(nodes, node{nns, dp})
		go datapath.RunReconciler(rctx, client, dp)
	}
	// inMaps waits until every node has frontend addr with want backends.
	inMaps := func(name, addr string, want int) error {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			all := true
			for _, n := range nodes {
				fes, err := n.dp.Maps().Frontends()
				if err != nil {
					return err
				}
				found := false
				for _, fe := range fes {
					if fe.Address == addr && fe.Count == want {
						found = true
					}
				}
				all = all && found
			}
			if all {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("service %s (%s) with %d backends not in every node's maps after 30s", name, addr, want)
			}
		}
	}
	h, hc := newHist(), newHist()
	start := time.Now()
	var changeTime time.Duration
	ready := true
	for i := 0; i < cfg.Changes; i++ {
		name := fmt.Sprintf("np-%04d", i)
		t0 := time.Now()
		svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}}, metav1.CreateOptions{})
		if err != nil {
			return latStat{}, latStat{}, "", fmt.Errorf("create service: %w", err)
		}
		pn, proto, port := "http", corev1.ProtocolTCP, int32(8080)
		var eps []discoveryv1.Endpoint
		for j := 0; j < 3; j++ {
			eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.%d", i, j+2)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		slice, err := client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
			Ports: []discoveryv1.EndpointPort{{Name: &pn, Protocol: &proto, Port: &port}},
		}, metav1.CreateOptions{})
		if err != nil {
			return latStat{}, latStat{}, "", fmt.Errorf("create endpointslice: %w", err)
		}
		want := net.JoinHostPort(svc.Spec.ClusterIP, "80")
		if err := inMaps(name, want, 3); err != nil {
			return latStat{}, latStat{}, "", err
		}
		h.RecordValue(int64(time.Since(t0)))

		// The endpoint change: a fourth backend in the same slice.
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.5", i)},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		t1 := time.Now()
		if _, err := client.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
			return latStat{}, latStat{}, "", fmt.Errorf("update endpointslice: %w", err)
		}
		if err := inMaps(name, want, 4); err != nil {
			return latStat{}, latStat{}, "", err
		}
		d := time.Since(t1)
		hc.RecordValue(int64(d))
		changeTime += d
	}
	return stat(h, time.Since(start)-changeTime), stat(hc, changeTime), "", nil
}
