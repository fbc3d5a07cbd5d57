package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// burstReplicas caps pod creations or deletions per sync, as upstream.
const burstReplicas = 500

// rsView is what the replica controller needs from a ReplicaSet or a
// ReplicationController, so one implementation serves both kinds.
type rsView struct {
	obj             metav1.Object
	replicas        int32
	selector        labels.Selector
	template        *corev1.PodTemplateSpec
	minReadySeconds int32
	status          appsv1.ReplicaSetStatus
}

// replicaKind adapts one of the two kinds.
type replicaKind struct {
	kind, apiVersion string
	get              func(ns, name string) (*rsView, error)
	list             func(ns string) ([]*rsView, error)
	fresh            func(ctx context.Context, ns, name string) (metav1.Object, error)
	updateStatus     func(ctx context.Context, v *rsView, st appsv1.ReplicaSetStatus) error
}

// replicaController keeps spec.replicas pods for each ReplicaSet (or RC).
type replicaController struct {
	client    kubernetes.Interface
	k         replicaKind
	log       *slog.Logger
	podLister corelisters.PodLister
	nsLister  corelisters.NamespaceLister
	queue     queue
	exp       *expectations
	synced    []toolscache.InformerSynced
}

func selectorOrNothing(ls *metav1.LabelSelector) labels.Selector {
	if ls == nil {
		return labels.Nothing()
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil || s.Empty() {
		return labels.Nothing()
	}
	return s
}

func rsToView(rs *appsv1.ReplicaSet) *rsView {
	r := int32(1)
	if rs.Spec.Replicas != nil {
		r = *rs.Spec.Replicas
	}
	return &rsView{obj: rs, replicas: r, selector: selectorOrNothing(rs.Spec.Selector), template: &rs.Spec.Template,
		minReadySeconds: rs.Spec.MinReadySeconds, status: rs.Status}
}

func rcToView(rc *corev1.ReplicationController) *rsView {
	r := int32(1)
	if rc.Spec.Replicas != nil {
		r = *rc.Spec.Replicas
	}
	sel := rc.Spec.Selector
	tmpl := rc.Spec.Template
	if tmpl == nil {
		tmpl = &corev1.PodTemplateSpec{}
	}
	if len(sel) == 0 {
		sel = tmpl.Labels // the RC default: the template's labels
	}
	s := labels.Nothing()
	if len(sel) > 0 {
		s = labels.SelectorFromSet(sel)
	}
	return &rsView{obj: rc, replicas: r, selector: s, template: tmpl, minReadySeconds: rc.Spec.MinReadySeconds,
		status: appsv1.ReplicaSetStatus{Replicas: rc.Status.Replicas, FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
			ReadyReplicas: rc.Status.ReadyReplicas, AvailableReplicas: rc.Status.AvailableReplicas, ObservedGeneration: rc.Status.ObservedGeneration}}
}

func newReplicaSetController(client kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) *replicaController {
	inf := f.Apps().V1().ReplicaSets()
	lister := inf.Lister()
	k := replicaKind{
		kind: "ReplicaSet", apiVersion: "apps/v1",
		get: func(ns, name string) (*rsView, error) {
			rs, err := lister.ReplicaSets(ns).Get(name)
			if err != nil {
				return nil, err
			}
			return rsToView(rs), nil
		},
		list: func(ns string) ([]*rsView, error) {
			l, err := lister.ReplicaSets(ns).List(labels.Everything())
			out := make([]*rsView, len(l))
			for i, rs := range l {
				out[i] = rsToView(rs)
			}
			return out, err
		},
		fresh: func(ctx context.Context, ns, name string) (metav1.Object, error) {
			return client.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		updateStatus: func(ctx context.Context, v *rsView, st appsv1.ReplicaSetStatus) error {
			rs := v.obj.(*appsv1.ReplicaSet).DeepCopy()
			st.Conditions = rs.Status.Conditions
			rs.Status = st
			_, err := client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
			return err
		},
	}
	return newReplicaController(client, f, k, inf.Informer(), log)
}

func newReplicationControllerController(client kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) *replicaController {
	inf := f.Core().V1().ReplicationControllers()
	lister := inf.Lister()
	k := replicaKind{
		kind: "ReplicationController", apiVersion: "v1",
		get: func(ns, name string) (*rsView, error) {
			rc, err := lister.ReplicationControllers(ns).Get(name)
			if err != nil {
				return nil, err
			}
			return rcToView(rc), nil
		},
		list: func(ns string) ([]*rsView, error) {
			l, err := lister.ReplicationControllers(ns).List(labels.Everything())
			out := make([]*rsView, len(l))
			for i, rc := range l {
				out[i] = rcToView(rc)
			}
			return out, err
		},
		fresh: func(ctx context.Context, ns, name string) (metav1.Object, error) {
			return client.CoreV1().ReplicationControllers(ns).Get(ctx, name, metav1.GetOptions{})
		},
		updateStatus: func(ctx context.Context, v *rsView, st appsv1.ReplicaSetStatus) error {
			rc := v.obj.(*corev1.ReplicationController).DeepCopy()
			rc.Status.Replicas = st.Replicas
			rc.Status.FullyLabeledReplicas = st.FullyLabeledReplicas
			rc.Status.ReadyReplicas = st.ReadyReplicas
			rc.Status.AvailableReplicas = st.AvailableReplicas
			rc.Status.ObservedGeneration = st.ObservedGeneration
			_, err := client.CoreV1().ReplicationControllers(rc.Namespace).UpdateStatus(ctx, rc, metav1.UpdateOptions{})
			return err
		},
	}
	return newReplicaController(client, f, k, inf.Informer(), log)
}

func newReplicaController(client kubernetes.Interface, f informers.SharedInformerFactory, k replicaKind, owners toolscache.SharedIndexInformer, log *slog.Logger) *replicaController {
	c := &replicaController{
		client: client, k: k, log: log.With("controller", k.kind),
		podLister: f.Core().V1().Pods().Lister(),
		nsLister:  f.Core().V1().Namespaces().Lister(),
		queue:     newQueue(k.kind),
		exp:       newExpectations(),
	}
	owners.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.queue.Add(keyOf(o)) },
		UpdateFunc: func(_, n any) { c.queue.Add(keyOf(n)) },
		DeleteFunc: func(o any) { k := keyOf(o); c.exp.delete(k); c.queue.Add(k) },
	})
	podInf := f.Core().V1().Pods().Informer()
	podInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.podAdded(o.(*corev1.Pod)) },
		UpdateFunc: func(o, n any) { c.podUpdated(o.(*corev1.Pod), n.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if p, ok := unwrap(o).(*corev1.Pod); ok {
				c.podDeleted(p)
			}
		},
	})
	f.Core().V1().Namespaces().Informer()
	c.synced = []toolscache.InformerSynced{owners.HasSynced, podInf.HasSynced}
	return c
}

// ownerKey is the queue key of the pod's controller if it is one of ours.
func (c *replicaController) ownerKey(p *corev1.Pod, ref *metav1.OwnerReference) string {
	if ref == nil || ref.Kind != c.k.kind {
		return ""
	}
	v, err := c.k.get(p.Namespace, ref.Name)
	if err != nil || v.obj.GetUID() != ref.UID {
		return ""
	}
	return p.Namespace + "/" + ref.Name
}

func (c *replicaController) enqueueMatching(p *corev1.Pod) {
	all, _ := c.k.list(p.Namespace)
	for _, v := range all {
		if v.selector.Matches(labels.Set(p.Labels)) {
			c.queue.Add(p.Namespace + "/" + v.obj.GetName())
		}
	}
}

func (c *replicaController) podAdded(p *corev1.Pod) {
	if p.DeletionTimestamp != nil {
		c.podDeleted(p)
		return
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		if k := c.ownerKey(p, ref); k != "" {
			c.exp.creationObserved(k)
			c.queue.Add(k)
		}
		return
	}
	c.enqueueMatching(p)
}

func (c *replicaController) podUpdated(old, p *corev1.Pod) {
	if old.ResourceVersion == p.ResourceVersion {
		return
	}
	if p.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		// Graceful deletion: the pod is gone for counting purposes now.
		c.podDeleted(p)
		return
	}
	oldRef, newRef := metav1.GetControllerOf(old), metav1.GetControllerOf(p)
	if oldRef != nil && (newRef == nil || oldRef.UID != newRef.UID) {
		if k := c.ownerKey(old, oldRef); k != "" {
			c.queue.Add(k)
		}
	}
	if newRef != nil {
		if k := c.ownerKey(p, newRef); k != "" {
			c.queue.Add(k)
			// A pod that just turned ready becomes available after minReadySeconds.
			if v, err := c.k.get(p.Namespace, newRef.Name); err == nil && v.minReadySeconds > 0 && !isPodReady(old) && isPodReady(p) {
				c.queue.AddAfter(k, time.Duration(v.minReadySeconds)*time.Second+100*time.Millisecond)
			}
		}
		return
	}
	if !reflect.DeepEqual(old.Labels, p.Labels) || oldRef != nil {
		c.enqueueMatching(p)
	}
}

func (c *replicaController) podDeleted(p *corev1.Pod) {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return
	}
	if k := c.ownerKey(p, ref); k != "" {
		c.exp.deletionObserved(k, p.Namespace+"/"+p.Name)
		c.queue.Add(k)
	}
}

func (c *replicaController) run(ctx context.Context, workers int) {
	if !toolscache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	runWorkers(ctx, c.log, c.k.kind, c.queue, workers, c.sync)
}

func (c *replicaController) namespaceTerminating(ns string) bool {
	n, err := c.nsLister.Get(ns)
	return err == nil && (n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating)
}

func (c *replicaController) sync(ctx context.Context, key string) error {
	ns, name, _ := toolscache.SplitMetaNamespaceKey(key)
	v, err := c.k.get(ns, name)
	if apierrors.IsNotFound(err) {
		c.exp.delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	needsSync := c.exp.satisfied(key)
	all, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := c.claimPods(ctx, v, all)
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	for _, p := range pods {
		if isPodActive(p) {
			active = append(active, p)
		}
	}
	var manageErr error
	if needsSync && v.obj.GetDeletionTimestamp() == nil {
		manageErr = c.manage(ctx, key, v, active)
	}
	st, wait := c.computeStatus(v, active)
	if !reflect.DeepEqual(st, statusNoConditions(v.status)) {
		if err := c.k.updateStatus(ctx, v, st); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("update %s %s status: %w", c.k.kind, key, err)
		}
	}
	if wait > 0 && manageErr == nil {
		c.queue.AddAfter(key, wait)
	}
	return manageErr
}

func statusNoConditions(s appsv1.ReplicaSetStatus) appsv1.ReplicaSetStatus {
	s.Conditions = nil
	s.TerminatingReplicas = nil
	return s
}

// claimPods adopts matching orphans and releases owned pods that stopped
// matching; it returns the pods the owner now controls.
func (c *replicaController) claimPods(ctx context.Context, v *rsView, all []*corev1.Pod) ([]*corev1.Pod, error) {
	uid := v.obj.GetUID()
	var owned []*corev1.Pod
	var recheck sync.Once
	canAdopt := v.obj.GetDeletionTimestamp() == nil
	for _, p := range all {
		matches := v.selector.Matches(labels.Set(p.Labels))
		ref := metav1.GetControllerOf(p)
		switch {
		case ref != nil && ref.UID == uid:
			if matches {
				owned = append(owned, p)
				continue
			}
			if p.DeletionTimestamp != nil {
				continue
			}
			if err := c.setPodOwner(ctx, p, uid, nil); err != nil {
				return nil, fmt.Errorf("release pod %s: %w", p.Name, err)
			}
		case ref == nil && matches && p.DeletionTimestamp == nil && canAdopt:
			// Upstream's recheck: adopt only if a live read confirms the owner
			// still exists with this UID and is not being deleted.
			recheck.Do(func() {
				fresh, err := c.k.fresh(ctx, p.Namespace, v.obj.GetName())
				if err != nil || fresh.GetUID() != uid || fresh.GetDeletionTimestamp() != nil {
					canAdopt = false
				}
			})
			if !canAdopt {
				continue
			}
			ref := ownerRefFor(v.obj, c.k.apiVersion, c.k.kind)
			if err := c.setPodOwner(ctx, p, "", &ref); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("adopt pod %s: %w", p.Name, err)
			}
			owned = append(owned, p)
		}
	}
	return owned, nil
}

// setPodOwner removes the reference to drop (if set) and adds add (if set).
func (c *replicaController) setPodOwner(ctx context.Context, p *corev1.Pod, drop types.UID, add *metav1.OwnerReference) error {
	cp := p.DeepCopy()
	var refs []metav1.OwnerReference
	for _, r := range cp.OwnerReferences {
		if drop != "" && r.UID == drop {
			continue
		}
		refs = append(refs, r)
	}
	if add != nil {
		refs = append(refs, *add)
	}
	cp.OwnerReferences = refs
	_, err := c.client.CoreV1().Pods(p.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	return err
}

func (c *replicaController) manage(ctx context.Context, key string, v *rsView, active []*corev1.Pod) error {
	diff := len(active) - int(v.replicas)
	switch {
	case diff < 0:
		if c.namespaceTerminating(v.obj.GetNamespace()) {
			return nil
		}
		n := min(-diff, burstReplicas)
		c.exp.expect(key, n, nil)
		created, err := slowStartBatch(n, 1, func() error { return c.createPod(ctx, v) })
		// Creations that never happened will never be observed.
		for i := created; i < n; i++ {
			c.exp.creationObserved(key)
		}
		return err
	case diff > 0:
		n := min(diff, burstReplicas)
		victims := podsToDelete(active, n)
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = p.Namespace + "/" + p.Name
		}
		c.exp.expect(key, 0, keys)
		var firstErr error
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
				if err != nil {
					c.exp.deletionObserved(key, keys[i])
					if !apierrors.IsNotFound(err) {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return fmt.Errorf("delete pods of %s %s: %w", c.k.kind, key, firstErr)
		}
	}
	return nil
}

func (c *replicaController) createPod(ctx context.Context, v *rsView) error {
	t := v.template
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            randName(v.obj.GetName() + "-"),
			Namespace:       v.obj.GetNamespace(),
			Labels:          copyMap(t.Labels),
			Annotations:     copyMap(t.Annotations),
			Finalizers:      append([]string(nil), t.Finalizers...),
			OwnerReferences: []metav1.OwnerReference{ownerRefFor(v.obj, c.k.apiVersion, c.k.kind)},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	_, err := c.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod for %s %s/%s: %w", c.k.kind, pod.Namespace, v.obj.GetName(), err)
	}
	return nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// slowStartBatch runs fn count times in doubling batches (1, 2, 4, ...) and
// stops at the first batch with an error, so a failing create (quota, bad
// spec) costs a few calls and not hundreds. It returns how many succeeded.
func slowStartBatch(count, initial int, fn func() error) (int, error) {
	done := 0
	for batch := min(count, initial); batch > 0; batch = min(2*batch, count-done) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		ok := 0
		for i := 0; i < batch; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := fn()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				ok++
			}()
		}
		wg.Wait()
		done += ok
		if firstErr != nil {
			return done, firstErr
		}
	}
	return done, nil
}

// podsToDelete picks n pods, preferring unscheduled, pending, not ready,
// recently ready, often restarted and young pods (upstream's ranking).
func podsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	s := append([]*corev1.Pod(nil), pods...)
	phaseRank := map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}
	restarts := func(p *corev1.Pod) int32 {
		var r int32
		for _, cs := range p.Status.ContainerStatuses {
			r = max(r, cs.RestartCount)
		}
		return r
	}
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
			return a.Spec.NodeName == ""
		}
		if phaseRank[a.Status.Phase] != phaseRank[b.Status.Phase] {
			return phaseRank[a.Status.Phase] < phaseRank[b.Status.Phase]
		}
		ra, rb := isPodReady(a), isPodReady(b)
		if ra != rb {
			return !ra
		}
		if ra && rb {
			ta, tb := podReadyCondition(a).LastTransitionTime, podReadyCondition(b).LastTransitionTime
			if !ta.Equal(&tb) {
				return tb.Before(&ta)
			}
		}
		if restarts(a) != restarts(b) {
			return restarts(a) > restarts(b)
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.Name > b.Name
	})
	return s[:n]
}

// computeStatus counts the owned active pods; wait > 0 is when the next pod
// becomes available (minReadySeconds).
func (c *replicaController) computeStatus(v *rsView, active []*corev1.Pod) (appsv1.ReplicaSetStatus, time.Duration) {
	now := time.Now()
	st := appsv1.ReplicaSetStatus{Replicas: int32(len(active)), ObservedGeneration: v.obj.GetGeneration()}
	tmplLabels := labels.SelectorFromSet(v.template.Labels)
	var wait time.Duration
	for _, p := range active {
		if tmplLabels.Matches(labels.Set(p.Labels)) {
			st.FullyLabeledReplicas++
		}
		if isPodReady(p) {
			st.ReadyReplicas++
			ok, w := isPodAvailable(p, v.minReadySeconds, now)
			if ok {
				st.AvailableReplicas++
			} else if w > 0 && (wait == 0 || w < wait) {
				wait = w
			}
		}
	}
	if wait > 0 {
		wait += 50 * time.Millisecond
	}
	return st, wait
}
