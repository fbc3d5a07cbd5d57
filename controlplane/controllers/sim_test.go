package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

// cluster is a real API server plus simulated nodes: the test renews their
// Leases and a fake agent marks bound pods Running/Ready and finishes
// graceful deletions, for nodes that are "alive".
type cluster struct {
	t      *testing.T
	env    *testenv.Env
	client kubernetes.Interface
	ctx    context.Context

	mu    sync.Mutex
	alive map[string]bool
	ips   map[string]int
}

func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("SKIFF_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func fastOptions() Options {
	return Options{
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond,
		// Generous for tests that do not fail nodes: on a loaded machine a
		// 2s grace could fire while the test's lease renewals lag.
		NodeMonitorGracePeriod: 20 * time.Second, PodEvictionTimeout: 20 * time.Second,
		Logger: testLogger(),
	}
}

// newCluster starts the API, n simulated nodes and (unless managers == 0) controller managers.
func newCluster(t *testing.T, nodes int, managers int) *cluster {
	return newClusterWith(t, nodes, managers, fastOptions())
}

func newClusterWith(t *testing.T, nodes int, managers int, o Options) *cluster {
	t.Helper()
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	cfg.QPS, cfg.Burst = -1, 0
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, env: env, client: client, ctx: ctx, alive: map[string]bool{}, ips: map[string]int{}}
	for i := 1; i <= nodes; i++ {
		c.addNode(fmt.Sprintf("n%d", i), nil)
	}
	go c.renewLeases()
	go c.agent()
	for i := 0; i < managers; i++ {
		c.startManager(ctx, o)
	}
	return c
}

func (c *cluster) startManager(ctx context.Context, o Options) {
	c.t.Helper()
	if err := Start(ctx, c.env.Config, o); err != nil {
		c.t.Fatalf("start controllers: %v", err)
	}
}

func (c *cluster) addNode(name string, mutate func(*corev1.Node)) {
	c.t.Helper()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
	}
	if mutate != nil {
		mutate(n)
	}
	created, err := c.client.CoreV1().Nodes().Create(c.ctx, n, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("create node %s: %v", name, err)
	}
	status := corev1.NodeStatus{
		Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
	}
	// The IPAM controller may write the node meanwhile: retry on conflicts.
	for i := 0; ; i++ {
		created.Status = status
		if mutate != nil {
			mutate(created)
		}
		_, err = c.client.CoreV1().Nodes().UpdateStatus(c.ctx, created, metav1.UpdateOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) || i > 20 {
			c.t.Fatalf("node %s status: %v", name, err)
		}
		if created, err = c.client.CoreV1().Nodes().Get(c.ctx, name, metav1.GetOptions{}); err != nil {
			c.t.Fatal(err)
		}
	}
	c.mu.Lock()
	c.alive[name] = true
	c.mu.Unlock()
	c.renew(name)
}

// kill makes a node silent: no lease renewals, no pod handling.
func (c *cluster) kill(name string) {
	c.mu.Lock()
	c.alive[name] = false
	c.mu.Unlock()
}

func (c *cluster) isAlive(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alive[name]
}

func (c *cluster) renew(name string) {
	leases := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(c.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		d := int32(40)
		_, _ = leases.Create(c.ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: &d, RenewTime: &now}}, metav1.CreateOptions{})
		return
	}
	if err != nil {
		return
	}
	l.Spec.RenewTime = &now
	_, _ = leases.Update(c.ctx, l, metav1.UpdateOptions{})
}

func (c *cluster) renewLeases() {
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		var names []string
		for n, a := range c.alive {
			if a {
				names = append(names, n)
			}
		}
		c.mu.Unlock()
		for _, n := range names {
			c.renew(n)
		}
	}
}

// agent plays the kubelet of every alive node.
func (c *cluster) agent() {
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
	}))
	inf := f.Core().V1().Pods().Informer()
	work := make(chan *corev1.Pod, 10000)
	h := func(o any) {
		if p, ok := o.(*corev1.Pod); ok {
			select {
			case work <- p:
			default:
			}
		}
	}
	inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: h, UpdateFunc: func(_, n any) { h(n) }})
	f.Start(c.ctx.Done())
	for i := 0; i < 4; i++ {
		go func() {
			for {
				select {
				case <-c.ctx.Done():
					return
				case p := <-work:
					c.handlePod(p)
				}
			}
		}()
	}
	// Periodic resync for pods whose node came back.
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			for _, o := range inf.GetStore().List() {
				h(o)
			}
		}
	}
}

func (c *cluster) handlePod(p *corev1.Pod) {
	if p.Spec.NodeName == "" || !c.isAlive(p.Spec.NodeName) {
		return
	}
	pods := c.client.CoreV1().Pods(p.Namespace)
	if p.DeletionTimestamp != nil {
		zero := int64(0)
		_ = pods.Delete(c.ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
		return
	}
	if p.Status.Phase == corev1.PodRunning && isPodReady(p) {
		return
	}
	cp := p.DeepCopy()
	if cp.Status.PodIP == "" {
		c.mu.Lock()
		c.ips[p.Spec.NodeName]++
		n := c.ips[p.Spec.NodeName]
		c.mu.Unlock()
		idx := 0
		fmt.Sscanf(p.Spec.NodeName, "n%d", &idx)
		cp.Status.PodIP = fmt.Sprintf("10.%d.%d.%d", 100+idx%100, n/250, n%250+1)
		cp.Status.PodIPs = []corev1.PodIP{{IP: cp.Status.PodIP}}
	}
	cp.Status.Phase = corev1.PodRunning
	now := metav1.Now()
	cp.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	_, _ = pods.UpdateStatus(c.ctx, cp, metav1.UpdateOptions{})
}

// eventually polls cond every 50ms until it holds or the deadline passes.
func (c *cluster) eventually(d time.Duration, what string, cond func() (bool, error)) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("timed out after %v waiting for %s (last error: %v)", d, what, last)
}

func (c *cluster) createNamespace(name string) {
	c.t.Helper()
	if _, err := c.client.CoreV1().Namespaces().Create(c.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create namespace: %v", err)
	}
}

// activePods are the non-terminating pods matching sel in ns.
func (c *cluster) activePods(ns, sel string) []corev1.Pod {
	l, err := c.client.CoreV1().Pods(ns).List(c.ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
			out = append(out, p)
		}
	}
	return out
}

func readyCount(pods []corev1.Pod) int {
	n := 0
	for i := range pods {
		if isPodReady(&pods[i]) {
			n++
		}
	}
	return n
}

func podTemplate(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}}}}},
	}
}

func int32p(v int32) *int32 { return &v }

func resourceQ(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func cancelable(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}
