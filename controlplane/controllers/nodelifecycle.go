package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/skiffnet/skiff/controlplane/scheduler"
)

const (
	nodeLeaseNamespace = corev1.NamespaceNodeLease
	podNodeNameIndex   = "spec.nodeName"
)

// nodeLifecycleController watches node heartbeats (Lease renewals in
// kube-node-lease and the Ready condition's heartbeat). A node silent for
// the grace period becomes Ready=Unknown with the unreachable taints; its
// pods turn not ready at once and are evicted after the eviction timeout
// unless they tolerate the taint.
type nodeLifecycleController struct {
	client      kubernetes.Interface
	log         *slog.Logger
	nodeLister  corelisters.NodeLister
	leaseLister coordlisters.LeaseLister
	podIndexer  toolscache.Indexer
	synced      []toolscache.InformerSynced
	grace       time.Duration
	eviction    time.Duration
	period      time.Duration

	mu     sync.Mutex
	health map[string]*nodeHealth
}

type nodeHealth struct {
	probe     time.Time // local time we last saw the node alive
	renew     time.Time
	heartbeat time.Time
	seenTaint map[string]time.Time // NoExecute taints without timeAdded
}

func newNodeLifecycleController(client kubernetes.Interface, f informers.SharedInformerFactory, grace, eviction time.Duration, log *slog.Logger) *nodeLifecycleController {
	nodes := f.Core().V1().Nodes()
	leaseInf := f.Coordination().V1().Leases()
	pods := f.Core().V1().Pods()
	_ = pods.Informer().AddIndexers(toolscache.Indexers{podNodeNameIndex: func(o any) ([]string, error) {
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}})
	period := min(max(grace/8, 100*time.Millisecond), 5*time.Second)
	return &nodeLifecycleController{
		client: client, log: log.With("controller", "nodelifecycle"),
		nodeLister: nodes.Lister(), leaseLister: leaseInf.Lister(), podIndexer: pods.Informer().GetIndexer(),
		synced: []toolscache.InformerSynced{nodes.Informer().HasSynced, leaseInf.Informer().HasSynced, pods.Informer().HasSynced},
		grace:  grace, eviction: eviction, period: period,
		health: map[string]*nodeHealth{},
	}
}

func (c *nodeLifecycleController) run(ctx context.Context) {
	if !toolscache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	t := time.NewTicker(c.period)
	defer t.Stop()
	for {
		nodes, _ := c.nodeLister.List(labels.Everything())
		seen := map[string]bool{}
		for _, n := range nodes {
			seen[n.Name] = true
			if err := c.monitor(ctx, n); err != nil && ctx.Err() == nil {
				c.log.Warn("monitor node", "node", n.Name, "err", err)
			}
		}
		c.mu.Lock()
		for name := range c.health {
			if !seen[name] {
				delete(c.health, name)
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *nodeLifecycleController) monitor(ctx context.Context, node *corev1.Node) error {
	now := time.Now()
	c.mu.Lock()
	h, ok := c.health[node.Name]
	if !ok {
		// A node first seen gets the full grace period from now.
		h = &nodeHealth{probe: now, seenTaint: map[string]time.Time{}}
		c.health[node.Name] = h
	}
	if l, err := c.leaseLister.Leases(nodeLeaseNamespace).Get(node.Name); err == nil && l.Spec.RenewTime != nil {
		if !l.Spec.RenewTime.Time.Equal(h.renew) {
			h.renew = l.Spec.RenewTime.Time
			h.probe = now
		}
	}
	ready := nodeReadyCondition(node)
	if ready != nil && !ready.LastHeartbeatTime.Time.Equal(h.heartbeat) {
		h.heartbeat = ready.LastHeartbeatTime.Time
		if ready.Status != corev1.ConditionUnknown {
			h.probe = now
		}
	}
	stale := now.Sub(h.probe) > c.grace
	c.mu.Unlock()

	if stale && (ready == nil || ready.Status != corev1.ConditionUnknown) {
		updated, err := c.markUnknown(ctx, node)
		if err != nil {
			return err
		}
		node = updated
		ready = nodeReadyCondition(node)
	}
	status := corev1.ConditionUnknown
	if ready != nil {
		status = ready.Status
	}
	if ready == nil && !stale {
		return nil // a new node whose agent has not reported yet
	}
	node, err := c.syncTaints(ctx, node, status)
	if err != nil {
		return err
	}
	if status != corev1.ConditionTrue {
		c.markPodsNotReady(ctx, node)
	}
	c.evict(ctx, node, h)
	return nil
}

// markUnknown sets every condition the agent owns to Unknown.
func (c *nodeLifecycleController) markUnknown(ctx context.Context, node *corev1.Node) (*corev1.Node, error) {
	cp := node.DeepCopy()
	now := metav1.Now()
	found := false
	for i := range cp.Status.Conditions {
		cond := &cp.Status.Conditions[i]
		if cond.Type == corev1.NodeReady {
			found = true
		}
		if cond.Status == corev1.ConditionUnknown {
			continue
		}
		cond.Status = corev1.ConditionUnknown
		cond.Reason = "NodeStatusUnknown"
		cond.Message = "Kubelet stopped posting node status."
		cond.LastTransitionTime = now
	}
	if !found {
		cp.Status.Conditions = append(cp.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
			Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.", LastTransitionTime: now, LastHeartbeatTime: node.CreationTimestamp})
	}
	updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("mark node %s Ready=Unknown: %w", node.Name, err)
	}
	c.log.Info("node stopped reporting", "node", node.Name, "grace", c.grace)
	return updated, nil
}

// syncTaints keeps the not-ready/unreachable taints in step with Ready.
func (c *nodeLifecycleController) syncTaints(ctx context.Context, node *corev1.Node, ready corev1.ConditionStatus) (*corev1.Node, error) {
	want := ""
	switch ready {
	case corev1.ConditionFalse:
		want = corev1.TaintNodeNotReady
	case corev1.ConditionUnknown:
		want = corev1.TaintNodeUnreachable
	}
	var out []corev1.Taint
	has := map[corev1.TaintEffect]bool{}
	changed := false
	for _, t := range node.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			if t.Key != want || (t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute) {
				changed = true
				continue
			}
			has[t.Effect] = true
		}
		out = append(out, t)
	}
	if want != "" {
		now := metav1.Now()
		for _, e := range []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute} {
			if !has[e] {
				out = append(out, corev1.Taint{Key: want, Effect: e, TimeAdded: &now})
				changed = true
			}
		}
	}
	if !changed {
		return node, nil
	}
	cp := node.DeepCopy()
	cp.Spec.Taints = out
	updated, err := c.client.CoreV1().Nodes().Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update taints of node %s: %w", node.Name, err)
	}
	return updated, nil
}

func (c *nodeLifecycleController) podsOn(node string) []*corev1.Pod {
	objs, _ := c.podIndexer.ByIndex(podNodeNameIndex, node)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*corev1.Pod))
	}
	return out
}

// markPodsNotReady flips Ready to False so endpoints stop routing to the
// node immediately, long before the pods are evicted.
func (c *nodeLifecycleController) markPodsNotReady(ctx context.Context, node *corev1.Node) {
	for _, p := range c.podsOn(node.Name) {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		cond := podReadyCondition(p)
		if cond != nil && cond.Status == corev1.ConditionFalse {
			continue
		}
		cp := p.DeepCopy()
		now := metav1.Now()
		nc := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "NodeNotReady",
			Message: fmt.Sprintf("node %s is not ready", node.Name), LastTransitionTime: now, LastProbeTime: now}
		replaced := false
		for i := range cp.Status.Conditions {
			if cp.Status.Conditions[i].Type == corev1.PodReady {
				cp.Status.Conditions[i] = nc
				replaced = true
			}
		}
		if !replaced {
			cp.Status.Conditions = append(cp.Status.Conditions, nc)
		}
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			c.log.Warn("mark pod not ready", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
}

// evict deletes pods that do not tolerate the node's NoExecute taints once
// their time is up: the eviction timeout for the not-ready/unreachable
// taints, tolerationSeconds for a tolerating pod, at once for other taints.
func (c *nodeLifecycleController) evict(ctx context.Context, node *corev1.Node, h *nodeHealth) {
	var taints []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			taints = append(taints, t)
		}
	}
	if len(taints) == 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	added := make([]time.Time, len(taints))
	for i, t := range taints {
		if t.TimeAdded != nil {
			added[i] = t.TimeAdded.Time
			continue
		}
		k := t.Key + "=" + t.Value
		if _, ok := h.seenTaint[k]; !ok {
			h.seenTaint[k] = now
		}
		added[i] = h.seenTaint[k]
	}
	c.mu.Unlock()
	lifecycleTaint := func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
	}
	for _, p := range c.podsOn(node.Name) {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.DeletionTimestamp != nil {
			// The agent is gone and cannot finish the deletion: once the
			// grace period has passed, remove the pod for good.
			grace := int64(30)
			if p.DeletionGracePeriodSeconds != nil {
				grace = *p.DeletionGracePeriodSeconds
			}
			if rc := nodeReadyCondition(node); rc != nil && rc.Status == corev1.ConditionUnknown &&
				now.After(p.DeletionTimestamp.Add(time.Duration(grace)*time.Second)) {
				zero := int64(0)
				_ = c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
			}
			continue
		}
		var deadline time.Time
		evictable := false
		for i, t := range taints {
			tol, tl := scheduler.ToleratesTaint(p.Spec.Tolerations, &t)
			var at time.Time
			switch {
			case !tol && lifecycleTaint(t):
				at = added[i].Add(c.eviction)
			case !tol:
				at = added[i]
			case tl.TolerationSeconds != nil:
				at = added[i].Add(time.Duration(max(*tl.TolerationSeconds, 0)) * time.Second)
			default:
				continue // tolerated forever
			}
			if !evictable || at.Before(deadline) {
				deadline = at
			}
			evictable = true
		}
		if !evictable || now.Before(deadline) {
			continue
		}
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			c.log.Warn("evict pod", "pod", p.Namespace+"/"+p.Name, "node", node.Name, "err", err)
			continue
		}
		c.log.Info("evicted pod from tainted node", "pod", p.Namespace+"/"+p.Name, "node", node.Name)
	}
}
