package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
)

// gcResource is one kind the garbage collector tracks through a typed informer.
type gcResource struct {
	gvr        schema.GroupVersionResource
	apiVersion string
	kind       string
	namespaced bool
	informer   toolscache.SharedIndexInformer
}

type gcNode struct {
	res        *gcResource
	ns, name   string
	uid        types.UID
	owners     []metav1.OwnerReference
	deleting   bool
	finalizers []string
}

// garbageCollector deletes objects whose owners are gone (background),
// deletes dependents before their owner (foreground, foregroundDeletion
// finalizer, blockOwnerDeletion) and strips owner references (orphan
// finalizer). Its dependency graph covers the kinds in gcResources; owners
// of other kinds are looked up live through discovery.
type garbageCollector struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	log    *slog.Logger
	queue  queue
	kinds  map[string]*gcResource // "apiVersion/kind"
	res    []*gcResource

	mu         sync.Mutex
	nodes      map[types.UID]*gcNode
	dependents map[types.UID]map[types.UID]struct{}
}

func newGarbageCollector(dyn dynamic.Interface, mapper meta.RESTMapper, f informers.SharedInformerFactory, log *slog.Logger) *garbageCollector {
	gc := &garbageCollector{dyn: dyn, mapper: mapper, log: log.With("controller", "garbagecollector"), queue: newQueue("garbagecollector"),
		kinds: map[string]*gcResource{}, nodes: map[types.UID]*gcNode{}, dependents: map[types.UID]map[types.UID]struct{}{}}
	add := func(group, version, resource, kind string, namespaced bool, inf toolscache.SharedIndexInformer) {
		av := version
		if group != "" {
			av = group + "/" + version
		}
		r := &gcResource{gvr: schema.GroupVersionResource{Group: group, Version: version, Resource: resource}, apiVersion: av, kind: kind, namespaced: namespaced, informer: inf}
		gc.res = append(gc.res, r)
		gc.kinds[av+"/"+kind] = r
		inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { gc.observe(r, o) },
			UpdateFunc: func(_, n any) { gc.observe(r, n) },
			DeleteFunc: func(o any) { gc.forget(unwrap(o)) },
		})
	}
	add("", "v1", "pods", "Pod", true, f.Core().V1().Pods().Informer())
	add("apps", "v1", "replicasets", "ReplicaSet", true, f.Apps().V1().ReplicaSets().Informer())
	add("apps", "v1", "deployments", "Deployment", true, f.Apps().V1().Deployments().Informer())
	add("", "v1", "replicationcontrollers", "ReplicationController", true, f.Core().V1().ReplicationControllers().Informer())
	add("", "v1", "services", "Service", true, f.Core().V1().Services().Informer())
	add("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, f.Discovery().V1().EndpointSlices().Informer())
	add("", "v1", "configmaps", "ConfigMap", true, f.Core().V1().ConfigMaps().Informer())
	add("", "v1", "secrets", "Secret", true, f.Core().V1().Secrets().Informer())
	add("", "v1", "nodes", "Node", false, f.Core().V1().Nodes().Informer())
	add("", "v1", "namespaces", "Namespace", false, f.Core().V1().Namespaces().Informer())
	return gc
}

func (gc *garbageCollector) observe(r *gcResource, o any) {
	obj, err := meta.Accessor(o)
	if err != nil {
		return
	}
	n := &gcNode{res: r, ns: obj.GetNamespace(), name: obj.GetName(), uid: obj.GetUID(), owners: obj.GetOwnerReferences(),
		deleting: obj.GetDeletionTimestamp() != nil, finalizers: obj.GetFinalizers()}
	gc.mu.Lock()
	if old, ok := gc.nodes[n.uid]; ok {
		for _, ref := range old.owners {
			delete(gc.dependents[ref.UID], n.uid)
		}
	}
	gc.nodes[n.uid] = n
	for _, ref := range n.owners {
		if gc.dependents[ref.UID] == nil {
			gc.dependents[ref.UID] = map[types.UID]struct{}{}
		}
		gc.dependents[ref.UID][n.uid] = struct{}{}
	}
	var wake []types.UID
	// A dependent of a foreground-deleting owner changed: the owner may be free now.
	for _, ref := range n.owners {
		if o, ok := gc.nodes[ref.UID]; ok && o.deleting {
			wake = append(wake, ref.UID)
		}
	}
	gc.mu.Unlock()
	if len(n.owners) > 0 || (n.deleting && (slices.Contains(n.finalizers, metav1.FinalizerOrphanDependents) || slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents))) {
		gc.queue.Add(string(n.uid))
	}
	for _, u := range wake {
		gc.queue.Add(string(u))
	}
}

func (gc *garbageCollector) forget(o any) {
	obj, err := meta.Accessor(o)
	if err != nil {
		return
	}
	uid := obj.GetUID()
	gc.mu.Lock()
	deps := make([]types.UID, 0, len(gc.dependents[uid]))
	for d := range gc.dependents[uid] {
		deps = append(deps, d)
	}
	var owners []types.UID
	if n, ok := gc.nodes[uid]; ok {
		for _, ref := range n.owners {
			delete(gc.dependents[ref.UID], uid)
			owners = append(owners, ref.UID)
		}
	}
	delete(gc.nodes, uid)
	if len(deps) == 0 {
		delete(gc.dependents, uid)
	}
	gc.mu.Unlock()
	// Dependents of a vanished owner may now be garbage; a foreground owner
	// waiting for this object may now finish.
	for _, d := range deps {
		gc.queue.Add(string(d))
	}
	for _, u := range owners {
		gc.queue.Add(string(u))
	}
}

func (gc *garbageCollector) run(ctx context.Context, workers int) {
	var synced []toolscache.InformerSynced
	for _, r := range gc.res {
		synced = append(synced, r.informer.HasSynced)
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	runWorkers(ctx, gc.log, "garbagecollector", gc.queue, workers, gc.sync)
}

func (gc *garbageCollector) snapshot(uid types.UID) (*gcNode, []*gcNode) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	n := gc.nodes[uid]
	var deps []*gcNode
	for d := range gc.dependents[uid] {
		if dn, ok := gc.nodes[d]; ok {
			deps = append(deps, dn)
		}
	}
	return n, deps
}

func (gc *garbageCollector) sync(ctx context.Context, key string) error {
	n, deps := gc.snapshot(types.UID(key))
	if n == nil {
		return nil
	}
	if n.deleting && slices.Contains(n.finalizers, metav1.FinalizerOrphanDependents) {
		return gc.orphan(ctx, n, deps)
	}
	if n.deleting && slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents) {
		if err := gc.foreground(ctx, n, deps); err != nil {
			return err
		}
	}
	if len(n.owners) > 0 {
		return gc.attemptToDelete(ctx, n, len(deps) > 0)
	}
	return nil
}

func (gc *garbageCollector) client(r *gcResource, ns string) dynamic.ResourceInterface {
	if r.namespaced {
		return gc.dyn.Resource(r.gvr).Namespace(ns)
	}
	return gc.dyn.Resource(r.gvr)
}

// orphan strips the owner's references from its dependents, then removes
// the orphan finalizer so the owner goes and the dependents stay.
func (gc *garbageCollector) orphan(ctx context.Context, owner *gcNode, deps []*gcNode) error {
	for _, d := range deps {
		if err := gc.editObject(ctx, d.res, d.ns, d.name, d.uid, func(o metav1.Object) bool {
			refs := o.GetOwnerReferences()
			out := slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return r.UID == owner.uid })
			o.SetOwnerReferences(out)
			return len(out) != len(refs)
		}); err != nil {
			return fmt.Errorf("orphan %s %s/%s: %w", d.res.kind, d.ns, d.name, err)
		}
	}
	return gc.removeFinalizer(ctx, owner, metav1.FinalizerOrphanDependents)
}

// foreground deletes the owner's dependents; once no dependent blocks it
// (blockOwnerDeletion), the foregroundDeletion finalizer comes off.
func (gc *garbageCollector) foreground(ctx context.Context, owner *gcNode, deps []*gcNode) error {
	blocking := 0
	for _, d := range deps {
		for _, ref := range d.owners {
			if ref.UID == owner.uid && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				blocking++
			}
		}
		if !d.deleting {
			gc.queue.Add(string(d.uid))
		}
	}
	if blocking > 0 {
		return nil
	}
	return gc.removeFinalizer(ctx, owner, metav1.FinalizerDeleteDependents)
}

func (gc *garbageCollector) removeFinalizer(ctx context.Context, n *gcNode, fin string) error {
	return gc.editObject(ctx, n.res, n.ns, n.name, n.uid, func(o metav1.Object) bool {
		f := o.GetFinalizers()
		out := slices.DeleteFunc(slices.Clone(f), func(s string) bool { return s == fin })
		o.SetFinalizers(out)
		return len(out) != len(f)
	})
}

// editObject is a live get-modify-update (no patch support needed).
func (gc *garbageCollector) editObject(ctx context.Context, r *gcResource, ns, name string, uid types.UID, edit func(metav1.Object) bool) error {
	cl := gc.client(r, ns)
	u, err := cl.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.GetUID() != uid || !edit(u) {
		return nil
	}
	_, err = cl.Update(ctx, u, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

type ownerState int

const (
	ownerSolid ownerState = iota
	ownerDangling
	ownerWaiting // being deleted in the foreground
)

func (gc *garbageCollector) classify(ctx context.Context, n *gcNode, ref metav1.OwnerReference) (ownerState, error) {
	gc.mu.Lock()
	o, ok := gc.nodes[ref.UID]
	gc.mu.Unlock()
	if ok {
		if o.deleting && slices.Contains(o.finalizers, metav1.FinalizerDeleteDependents) {
			return ownerWaiting, nil
		}
		return ownerSolid, nil
	}
	// Not in the graph: ask the API server, so a lagging cache never
	// deletes a live object's dependents.
	r, ns, err := gc.resolve(ref, n.ns)
	if err != nil {
		return ownerSolid, nil // unknown kind: never collect on a guess
	}
	u, err := gc.client(r, ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ownerDangling, nil
	}
	if err != nil {
		return ownerSolid, err
	}
	if u.GetUID() != ref.UID {
		return ownerDangling, nil
	}
	if u.GetDeletionTimestamp() != nil && slices.Contains(u.GetFinalizers(), metav1.FinalizerDeleteDependents) {
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

func (gc *garbageCollector) resolve(ref metav1.OwnerReference, ns string) (*gcResource, string, error) {
	if r, ok := gc.kinds[ref.APIVersion+"/"+ref.Kind]; ok {
		if !r.namespaced {
			ns = ""
		}
		return r, ns, nil
	}
	if gc.mapper == nil {
		return nil, "", fmt.Errorf("unknown kind %s", ref.Kind)
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, "", err
	}
	m, err := gc.mapper.RESTMapping(gv.WithKind(ref.Kind).GroupKind(), gv.Version)
	if err != nil {
		return nil, "", err
	}
	r := &gcResource{gvr: m.Resource, apiVersion: ref.APIVersion, kind: ref.Kind, namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}
	if !r.namespaced {
		ns = ""
	}
	return r, ns, nil
}

// attemptToDelete decides about one dependent, following upstream's rules.
func (gc *garbageCollector) attemptToDelete(ctx context.Context, n *gcNode, hasDependents bool) error {
	var solid, dangling, waiting []metav1.OwnerReference
	for _, ref := range n.owners {
		st, err := gc.classify(ctx, n, ref)
		if err != nil {
			return err
		}
		switch st {
		case ownerSolid:
			solid = append(solid, ref)
		case ownerDangling:
			dangling = append(dangling, ref)
		case ownerWaiting:
			waiting = append(waiting, ref)
		}
	}
	if len(dangling) == 0 && len(waiting) == 0 {
		return nil
	}
	if len(solid) > 0 {
		// Still owned: drop only the references to gone or going owners.
		bad := map[types.UID]bool{}
		for _, r := range append(dangling, waiting...) {
			bad[r.UID] = true
		}
		return gc.editObject(ctx, n.res, n.ns, n.name, n.uid, func(o metav1.Object) bool {
			refs := o.GetOwnerReferences()
			out := slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return bad[r.UID] })
			o.SetOwnerReferences(out)
			return len(out) != len(refs)
		})
	}
	if n.deleting {
		return nil
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case len(waiting) > 0 && hasDependents:
		policy = metav1.DeletePropagationForeground
	case slices.Contains(n.finalizers, metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	uid := n.uid
	err := gc.client(n.res, n.ns).Delete(ctx, n.name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("collect %s %s/%s: %w", n.res.kind, n.ns, n.name, err)
	}
	gc.log.Debug("collected", "kind", n.res.kind, "namespace", n.ns, "name", n.name, "policy", policy)
	return nil
}
