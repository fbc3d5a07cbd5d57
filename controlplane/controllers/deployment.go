package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// deploymentController rolls Deployments out through ReplicaSets.
type deploymentController struct {
	client    kubernetes.Interface
	log       *slog.Logger
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	queue     queue
	synced    []toolscache.InformerSynced
}

func newDeploymentController(client kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) *deploymentController {
	dInf := f.Apps().V1().Deployments()
	rsInf := f.Apps().V1().ReplicaSets()
	podInf := f.Core().V1().Pods()
	c := &deploymentController{
		client: client, log: log.With("controller", "deployment"),
		dLister: dInf.Lister(), rsLister: rsInf.Lister(), podLister: podInf.Lister(),
		queue: newQueue("deployment"),
	}
	dInf.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.queue.Add(keyOf(o)) },
		UpdateFunc: func(_, n any) { c.queue.Add(keyOf(n)) },
		DeleteFunc: func(o any) { c.queue.Add(keyOf(o)) },
	})
	rsInf.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { c.rsChanged(o.(*appsv1.ReplicaSet)) },
		UpdateFunc: func(o, n any) {
			or, nr := o.(*appsv1.ReplicaSet), n.(*appsv1.ReplicaSet)
			if or.ResourceVersion == nr.ResourceVersion {
				return
			}
			if a, b := metav1.GetControllerOf(or), metav1.GetControllerOf(nr); a != nil && (b == nil || a.UID != b.UID) {
				c.rsChanged(or)
			}
			c.rsChanged(nr)
		},
		DeleteFunc: func(o any) {
			if rs, ok := unwrap(o).(*appsv1.ReplicaSet); ok {
				c.rsChanged(rs)
			}
		},
	})
	// Recreate waits for the old pods to be gone.
	podInf.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		DeleteFunc: func(o any) {
			p, ok := unwrap(o).(*corev1.Pod)
			if !ok {
				return
			}
			ref := metav1.GetControllerOf(p)
			if ref == nil || ref.Kind != "ReplicaSet" {
				return
			}
			if rs, err := c.rsLister.ReplicaSets(p.Namespace).Get(ref.Name); err == nil && rs.UID == ref.UID {
				if d := c.ownerOf(rs); d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
					c.queue.Add(keyOf(d))
				}
			}
		},
	})
	c.synced = []toolscache.InformerSynced{dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced}
	return c
}

func (c *deploymentController) ownerOf(rs *appsv1.ReplicaSet) *appsv1.Deployment {
	ref := metav1.GetControllerOf(rs)
	if ref == nil || ref.Kind != "Deployment" {
		return nil
	}
	d, err := c.dLister.Deployments(rs.Namespace).Get(ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}

func (c *deploymentController) rsChanged(rs *appsv1.ReplicaSet) {
	if d := c.ownerOf(rs); d != nil {
		c.queue.Add(keyOf(d))
		return
	}
	if metav1.GetControllerOf(rs) != nil {
		return
	}
	// An orphan: every deployment whose selector matches may adopt it.
	ds, _ := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	for _, d := range ds {
		if selectorOrNothing(d.Spec.Selector).Matches(labels.Set(rs.Labels)) {
			c.queue.Add(keyOf(d))
		}
	}
}

func (c *deploymentController) run(ctx context.Context, workers int) {
	if !toolscache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	runWorkers(ctx, c.log, "deployment", c.queue, workers, c.sync)
}

func (c *deploymentController) sync(ctx context.Context, key string) error {
	ns, name, _ := toolscache.SplitMetaNamespaceKey(key)
	cached, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	d := cached.DeepCopy()
	sel := selectorOrNothing(d.Spec.Selector)
	if sel.Empty() || d.Spec.Selector == nil {
		return nil
	}
	rsList, err := c.claimReplicaSets(ctx, d, sel)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatusOnly(ctx, d, rsList)
	}
	if changed, err := c.checkPausedConditions(ctx, d); err != nil || changed {
		return err
	}
	if d.Spec.Paused {
		return c.syncScale(ctx, d, rsList)
	}
	if c.isScalingEvent(d, rsList) {
		return c.syncScale(ctx, d, rsList)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return c.rolloutRecreate(ctx, d, rsList)
	}
	return c.rolloutRolling(ctx, d, rsList)
}

// claimReplicaSets adopts matching orphan ReplicaSets and releases owned ones
// whose labels stopped matching.
func (c *deploymentController) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var owned []*appsv1.ReplicaSet
	var recheck sync.Once
	canAdopt := d.DeletionTimestamp == nil
	for _, rs := range all {
		ref := metav1.GetControllerOf(rs)
		matches := sel.Matches(labels.Set(rs.Labels))
		switch {
		case ref != nil && ref.UID == d.UID:
			if matches {
				owned = append(owned, rs)
				continue
			}
			if rs.DeletionTimestamp != nil {
				continue
			}
			cp := rs.DeepCopy()
			cp.OwnerReferences = dropOwner(cp.OwnerReferences, d.UID)
			if _, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("release replicaset %s: %w", rs.Name, err)
			}
		case ref == nil && matches && rs.DeletionTimestamp == nil && canAdopt:
			recheck.Do(func() {
				fresh, err := c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
				if err != nil || fresh.UID != d.UID || fresh.DeletionTimestamp != nil {
					canAdopt = false
				}
			})
			if !canAdopt {
				continue
			}
			cp := rs.DeepCopy()
			cp.OwnerReferences = append(cp.OwnerReferences, ownerRefFor(d, "apps/v1", "Deployment"))
			updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("adopt replicaset %s: %w", rs.Name, err)
			}
			owned = append(owned, updated)
		}
	}
	return owned, nil
}

func dropOwner(refs []metav1.OwnerReference, uid types.UID) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, r := range refs {
		if r.UID != uid {
			out = append(out, r)
		}
	}
	return out
}

// splitRS finds the new ReplicaSet (template equal to the deployment's,
// oldest first if several) and the old ones.
func splitRS(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	sorted := append([]*appsv1.ReplicaSet(nil), rsList...)
	sortByCreation(sorted)
	var newRS *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	for _, rs := range sorted {
		if newRS == nil && equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			newRS = rs
			continue
		}
		old = append(old, rs)
	}
	return newRS, old
}

// getAllAndSyncRevision returns the new RS (created if asked and missing) with
// its revision bumped past every old one: that is also how a rollback works,
// an old template made current again reuses its RS and gets the next revision.
func (c *deploymentController) getAllAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	newRS, old := splitRS(d, rsList)
	var maxOld int64
	for _, rs := range old {
		maxOld = max(maxOld, revisionOf(rs))
	}
	newRevision := strconv.FormatInt(maxOld+1, 10)
	if newRS != nil {
		cp := newRS.DeepCopy()
		changed := false
		if revisionOf(cp) <= maxOld {
			if cp.Annotations == nil {
				cp.Annotations = map[string]string{}
			}
			if oldRev := cp.Annotations[revisionAnnotation]; oldRev != "" {
				hist := cp.Annotations[revisionHistoryAnnotation]
				if hist != "" {
					hist += ","
				}
				cp.Annotations[revisionHistoryAnnotation] = hist + oldRev
			}
			cp.Annotations[revisionAnnotation] = newRevision
			changed = true
		}
		if cp.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			cp.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			changed = true
		}
		if changed {
			var err error
			if newRS, err = c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
				return nil, nil, fmt.Errorf("update revision of replicaset %s: %w", cp.Name, err)
			}
		}
		if err := c.syncDeploymentRevision(ctx, d, newRS.Annotations[revisionAnnotation]); err != nil {
			return nil, nil, err
		}
		if getDeploymentCondition(&d.Status, appsv1.DeploymentProgressing) == nil {
			setDeploymentCondition(&d.Status, progressingCond(corev1.ConditionTrue, "FoundNewReplicaSet", fmt.Sprintf("Found new replica set %q", newRS.Name)))
		}
		return newRS, old, nil
	}
	if !create {
		return nil, old, nil
	}
	hash := templateHash(&d.Spec.Template, d.Status.CollisionCount)
	tmpl := *d.Spec.Template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[podTemplateHashLabel] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[podTemplateHashLabel] = hash
	rsLabels := maps.Clone(d.Spec.Template.Labels)
	if rsLabels == nil {
		rsLabels = map[string]string{}
	}
	rsLabels[podTemplateHashLabel] = hash
	replicas := c.newRSReplicas(d, old, nil)
	surge := int32(0)
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		surge, _ = fenceposts(d)
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: rsLabels,
			Annotations: map[string]string{
				revisionAnnotation:        newRevision,
				desiredReplicasAnnotation: strconv.Itoa(int(replicasOf(d.Spec.Replicas))),
				maxReplicasAnnotation:     strconv.Itoa(int(replicasOf(d.Spec.Replicas) + surge)),
			},
			OwnerReferences: []metav1.OwnerReference{ownerRefFor(d, "apps/v1", "Deployment")},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: tmpl},
	}
	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := c.client.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if gerr == nil {
			if ref := metav1.GetControllerOf(existing); ref != nil && ref.UID == d.UID && equalIgnoreHash(&existing.Spec.Template, &d.Spec.Template) {
				return existing, old, nil
			}
		}
		// A hash collision with a foreign or different RS: bump the count so
		// the next attempt hashes to another name.
		cc := int32(0)
		if d.Status.CollisionCount != nil {
			cc = *d.Status.CollisionCount
		}
		cc++
		d.Status.CollisionCount = &cc
		if _, uerr := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); uerr != nil {
			return nil, nil, uerr
		}
		return nil, nil, fmt.Errorf("replicaset name %s collides, collisionCount now %d", rs.Name, cc)
	}
	if err != nil {
		setDeploymentCondition(&d.Status, progressingCond(corev1.ConditionFalse, "ReplicaSetCreateError", fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)))
		_, _ = c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		return nil, nil, fmt.Errorf("create replicaset %s: %w", rs.Name, err)
	}
	setDeploymentCondition(&d.Status, progressingCond(corev1.ConditionTrue, "NewReplicaSetCreated", fmt.Sprintf("Created new replica set %q", created.Name)))
	if err := c.syncDeploymentRevision(ctx, d, newRevision); err != nil {
		return nil, nil, err
	}
	return created, old, nil
}

// syncDeploymentRevision mirrors the new RS's revision on the deployment.
func (c *deploymentController) syncDeploymentRevision(ctx context.Context, d *appsv1.Deployment, rev string) error {
	if d.Annotations[revisionAnnotation] == rev {
		return nil
	}
	cp := d.DeepCopy()
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[revisionAnnotation] = rev
	updated, err := c.client.AppsV1().Deployments(d.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("set revision on deployment %s: %w", d.Name, err)
	}
	st := d.Status
	*d = *updated
	d.Status = st // keep the conditions computed in this sync
	return nil
}

func progressingCond(status corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
	now := metav1.Now()
	return appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: status, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
}

// newRSReplicas is the size the new RS may have now.
func (c *deploymentController) newRSReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := replicasOf(d.Spec.Replicas)
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return want
	}
	var cur int32
	if newRS != nil {
		cur = replicasOf(newRS.Spec.Replicas)
	}
	surge, _ := fenceposts(d)
	maxTotal := want + surge
	total := podCountUpperBound(all)
	if total >= maxTotal {
		return cur
	}
	return cur + min(maxTotal-total, max(want-cur, 0))
}

// scaleRS sets replicas and the desired/max annotations; false if nothing changed.
func (c *deploymentController) scaleRS(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment) (*appsv1.ReplicaSet, bool, error) {
	surge := int32(0)
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		surge, _ = fenceposts(d)
	}
	desired := strconv.Itoa(int(replicasOf(d.Spec.Replicas)))
	maxR := strconv.Itoa(int(replicasOf(d.Spec.Replicas) + surge))
	if replicasOf(rs.Spec.Replicas) == n && rs.Annotations[desiredReplicasAnnotation] == desired && rs.Annotations[maxReplicasAnnotation] == maxR {
		return rs, false, nil
	}
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &n
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[desiredReplicasAnnotation] = desired
	cp.Annotations[maxReplicasAnnotation] = maxR
	updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return rs, false, fmt.Errorf("scale replicaset %s to %d: %w", rs.Name, n, err)
	}
	return updated, replicasOf(rs.Spec.Replicas) != n, nil
}

func (c *deploymentController) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllAndSyncRevision(ctx, d, rsList, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	// Scale up the new RS within maxSurge.
	if want := replicasOf(d.Spec.Replicas); replicasOf(newRS.Spec.Replicas) != want {
		n := want
		if replicasOf(newRS.Spec.Replicas) < want {
			n = c.newRSReplicas(d, all, newRS)
		}
		var scaled bool
		if newRS, scaled, err = c.scaleRS(ctx, newRS, n, d); err != nil {
			return err
		}
		all[len(all)-1] = newRS
		if scaled {
			return c.syncRolloutStatus(ctx, d, all, newRS)
		}
	}
	// Scale down old RSs within maxUnavailable.
	scaled, err := c.reconcileOld(ctx, d, old, newRS)
	if err != nil {
		return err
	}
	if scaled {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if deploymentComplete(d, c.calculateStatus(d, all, newRS)) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

func (c *deploymentController) reconcileOld(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if specReplicas(old) == 0 {
		return false, nil
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	minAvailable := replicasOf(d.Spec.Replicas) - maxUnavailable(d)
	newUnavailable := replicasOf(newRS.Spec.Replicas) - newRS.Status.AvailableReplicas
	maxScaledDown := specReplicas(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	sortByCreation(old)
	total := int32(0)
	// First remove unhealthy old pods: they do not count as available and
	// would otherwise block the rollout.
	for i, rs := range old {
		if total >= maxScaledDown {
			break
		}
		r := replicasOf(rs.Spec.Replicas)
		unhealthy := r - rs.Status.AvailableReplicas
		if r == 0 || unhealthy <= 0 {
			continue
		}
		n := min(maxScaledDown-total, unhealthy)
		updated, _, err := c.scaleRS(ctx, rs, r-n, d)
		if err != nil {
			return false, err
		}
		old[i] = updated
		total += n
	}
	all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	avail := availableLowerBound(all)
	if avail > minAvailable {
		budget := avail - minAvailable
		done := int32(0)
		for i, rs := range old {
			if done >= budget {
				break
			}
			r := replicasOf(rs.Spec.Replicas)
			if r == 0 {
				continue
			}
			n := min(r, budget-done)
			updated, _, err := c.scaleRS(ctx, rs, r-n, d)
			if err != nil {
				return false, err
			}
			old[i] = updated
			done += n
		}
		total += done
	}
	return total > 0, nil
}

func (c *deploymentController) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	scaledDown := false
	for i, rs := range old {
		if replicasOf(rs.Spec.Replicas) == 0 {
			continue
		}
		updated, scaled, err := c.scaleRS(ctx, rs, 0, d)
		if err != nil {
			return err
		}
		old[i] = updated
		scaledDown = scaledDown || scaled
	}
	if scaledDown || c.oldPodsRunning(d, old) {
		return c.syncRolloutStatus(ctx, d, append(append([]*appsv1.ReplicaSet(nil), old...), newRS), newRS)
	}
	if newRS == nil {
		if newRS, old, err = c.getAllAndSyncRevision(ctx, d, rsList, true); err != nil {
			return err
		}
	}
	if newRS, _, err = c.scaleRS(ctx, newRS, replicasOf(d.Spec.Replicas), d); err != nil {
		return err
	}
	all = append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	if deploymentComplete(d, c.calculateStatus(d, all, newRS)) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

// oldPodsRunning: Recreate must not start new pods while any old pod exists
// in a non-terminal phase (terminating ones included).
func (c *deploymentController) oldPodsRunning(d *appsv1.Deployment, old []*appsv1.ReplicaSet) bool {
	uids := map[string]bool{}
	for _, rs := range old {
		if rs.Status.Replicas > 0 {
			return true
		}
		uids[string(rs.UID)] = true
	}
	pods, _ := c.podLister.Pods(d.Namespace).List(labels.Everything())
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil || !uids[string(ref.UID)] {
			continue
		}
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true
		}
	}
	return false
}

// isScalingEvent: some active RS was sized for a different replica count.
func (c *deploymentController) isScalingEvent(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) bool {
	newRS, old := splitRS(d, rsList)
	for _, rs := range append(old, newRS) {
		if rs == nil || replicasOf(rs.Spec.Replicas) == 0 {
			continue
		}
		if v, ok := rs.Annotations[desiredReplicasAnnotation]; ok && v != strconv.Itoa(int(replicasOf(d.Spec.Replicas))) {
			return true
		}
	}
	return false
}

// syncScale resizes without rolling out (paused deployments, scaling events):
// one active RS takes the new size; several share it in proportion.
func (c *deploymentController) syncScale(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.getAllAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	want := replicasOf(d.Spec.Replicas)
	var active []*appsv1.ReplicaSet
	for _, rs := range append(append([]*appsv1.ReplicaSet(nil), old...), newRS) {
		if rs != nil && replicasOf(rs.Spec.Replicas) > 0 {
			active = append(active, rs)
		}
	}
	switch {
	case len(active) == 0 && newRS != nil:
		if _, _, err := c.scaleRS(ctx, newRS, want, d); err != nil {
			return err
		}
	case len(active) == 1:
		if _, _, err := c.scaleRS(ctx, active[0], want, d); err != nil {
			return err
		}
	case len(active) > 1:
		surge := int32(0)
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			surge, _ = fenceposts(d)
		}
		cur := specReplicas(active)
		toAdd := want + surge - cur
		if d.Spec.Paused {
			toAdd = want - cur
		}
		// Largest first; leftovers go to the largest, as upstream.
		sort.SliceStable(active, func(i, j int) bool {
			return replicasOf(active[i].Spec.Replicas) > replicasOf(active[j].Spec.Replicas)
		})
		sizes := make([]int32, len(active))
		added := int32(0)
		for i, rs := range active {
			r := replicasOf(rs.Spec.Replicas)
			share := int32(int64(toAdd) * int64(r) / int64(max(cur, 1)))
			sizes[i] = max(r+share, 0)
			added += sizes[i] - r
		}
		sizes[0] = max(sizes[0]+toAdd-added, 0)
		for i, rs := range active {
			if _, _, err := c.scaleRS(ctx, rs, sizes[i], d); err != nil {
				return err
			}
		}
	}
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	if d.Spec.Paused {
		return c.syncStatusOnly(ctx, d, all)
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

// checkPausedConditions records DeploymentPaused / DeploymentResumed.
func (c *deploymentController) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) (bool, error) {
	cond := getDeploymentCondition(&d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == "ProgressDeadlineExceeded" {
		return false, nil
	}
	paused := cond != nil && cond.Reason == "DeploymentPaused"
	var next *appsv1.DeploymentCondition
	switch {
	case d.Spec.Paused && !paused:
		x := progressingCond(corev1.ConditionUnknown, "DeploymentPaused", "Deployment is paused")
		next = &x
	case !d.Spec.Paused && paused:
		x := progressingCond(corev1.ConditionUnknown, "DeploymentResumed", "Deployment is resumed")
		next = &x
	}
	if next == nil {
		return false, nil
	}
	setDeploymentCondition(&d.Status, *next)
	_, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return true, err
}

func (c *deploymentController) calculateStatus(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) appsv1.DeploymentStatus {
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, CollisionCount: d.Status.CollisionCount,
		Conditions: append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...)}
	for _, rs := range all {
		if rs == nil {
			continue
		}
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	st.UnavailableReplicas = max(specReplicas(all)-st.AvailableReplicas, 0)
	want := replicasOf(d.Spec.Replicas)
	now := metav1.Now()
	if st.AvailableReplicas >= want-maxUnavailable(d) {
		setDeploymentCondition(&st, appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability.", LastUpdateTime: now, LastTransitionTime: now})
	} else {
		setDeploymentCondition(&st, appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse,
			Reason: "MinimumReplicasUnavailable", Message: "Deployment does not have minimum availability.", LastUpdateTime: now, LastTransitionTime: now})
	}
	return st
}

func deploymentComplete(d *appsv1.Deployment, st appsv1.DeploymentStatus) bool {
	want := replicasOf(d.Spec.Replicas)
	return st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want && st.ObservedGeneration >= d.Generation
}

func (c *deploymentController) writeStatus(ctx context.Context, d *appsv1.Deployment, st appsv1.DeploymentStatus) error {
	if apiequality.Semantic.DeepEqual(d.Status, st) {
		return nil
	}
	cp := d.DeepCopy()
	cp.Status = st
	if _, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update deployment %s/%s status: %w", d.Namespace, d.Name, err)
	}
	return nil
}

func (c *deploymentController) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, _ := splitRS(d, nonNil(rsList))
	return c.writeStatus(ctx, d, c.calculateStatus(d, nonNil(rsList), newRS))
}

func nonNil(l []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, x := range l {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

// syncRolloutStatus computes status and the Progressing condition, and
// requeues the deployment for its progress deadline.
func (c *deploymentController) syncRolloutStatus(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	all = nonNil(all)
	st := c.calculateStatus(d, all, newRS)
	deadline := int32(defaultProgressDeadline)
	if d.Spec.ProgressDeadlineSeconds != nil {
		deadline = *d.Spec.ProgressDeadlineSeconds
	}
	cond := getDeploymentCondition(&st, appsv1.DeploymentProgressing)
	rsName := ""
	if newRS != nil {
		rsName = newRS.Name
	}
	var requeue time.Duration
	switch {
	case deploymentComplete(d, st):
		setDeploymentCondition(&st, progressingCond(corev1.ConditionTrue, "NewReplicaSetAvailable", fmt.Sprintf("ReplicaSet %q has successfully progressed.", rsName)))
	case progressed(&d.Status, &st):
		// Keep the transition time of an already-True condition, refresh the update time.
		setDeploymentCondition(&st, progressingCond(corev1.ConditionTrue, "ReplicaSetUpdated", fmt.Sprintf("ReplicaSet %q is progressing.", rsName)))
		requeue = time.Duration(deadline) * time.Second
	case cond != nil && cond.Reason == "ProgressDeadlineExceeded":
	default:
		var last time.Time
		if cond != nil {
			last = cond.LastUpdateTime.Time
		}
		if last.IsZero() {
			setDeploymentCondition(&st, progressingCond(corev1.ConditionTrue, "ReplicaSetUpdated", fmt.Sprintf("ReplicaSet %q is progressing.", rsName)))
			requeue = time.Duration(deadline) * time.Second
		} else if left := time.Until(last.Add(time.Duration(deadline) * time.Second)); left <= 0 {
			setDeploymentCondition(&st, progressingCond(corev1.ConditionFalse, "ProgressDeadlineExceeded", fmt.Sprintf("ReplicaSet %q has timed out progressing.", rsName)))
		} else {
			requeue = left
		}
	}
	if requeue > 0 {
		c.queue.AddAfter(keyOf(d), requeue+100*time.Millisecond)
	}
	return c.writeStatus(ctx, d, st)
}

func progressed(old, cur *appsv1.DeploymentStatus) bool {
	return cur.UpdatedReplicas != old.UpdatedReplicas || cur.ReadyReplicas > old.ReadyReplicas ||
		cur.AvailableReplicas > old.AvailableReplicas || cur.Replicas-cur.UpdatedReplicas < old.Replicas-old.UpdatedReplicas
}

// cleanup deletes the oldest fully scaled-down RSs beyond revisionHistoryLimit.
func (c *deploymentController) cleanup(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	limit := int32(10)
	if d.Spec.RevisionHistoryLimit != nil {
		limit = *d.Spec.RevisionHistoryLimit
	}
	var dead []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs != nil && rs.DeletionTimestamp == nil && replicasOf(rs.Spec.Replicas) == 0 && rs.Status.Replicas == 0 && rs.Status.ObservedGeneration >= rs.Generation {
			dead = append(dead, rs)
		}
	}
	if int32(len(dead)) <= limit {
		return nil
	}
	sort.SliceStable(dead, func(i, j int) bool { return revisionOf(dead[i]) < revisionOf(dead[j]) })
	var errs []string
	for _, rs := range dead[:int32(len(dead))-limit] {
		bg := metav1.DeletePropagationBackground
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("clean up old replicasets of %s: %s", d.Name, strings.Join(errs, "; "))
	}
	return nil
}
