package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffnet/skiff/controlplane/storage"
)

var deleteOptionsGVK = metav1.SchemeGroupVersion.WithKind("DeleteOptions")

// deleteOptions reads DeleteOptions from the body (if any) and the query.
func deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		// client-go's typed clients send protobuf, kubectl JSON: decode by Content-Type. Any
		// group's DeleteOptions will do, as in Kubernetes (client-go sends the resource's).
		info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), mediaType(r))
		if !ok {
			return nil, unsupportedMedia(mediaType(r))
		}
		_, gvk, err := info.Serializer.Decode(body, &deleteOptionsGVK, opts)
		if err != nil {
			return nil, badRequest("decode DeleteOptions: %v", err)
		}
		if gvk != nil && gvk.Kind != "DeleteOptions" {
			return nil, badRequest("the body is %s, but delete takes DeleteOptions", gvkString(gvk))
		}
	}
	q := r.URL.Query()
	if g := q.Get("gracePeriodSeconds"); g != "" {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil, badRequest("gracePeriodSeconds=%q: want an integer", g)
		}
		opts.GracePeriodSeconds = &n
	}
	if p := q.Get("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	if o := q.Get("orphanDependents"); o != "" {
		b := isTrue(o)
		opts.OrphanDependents = &b
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, badRequest("propagationPolicy %q: want Background, Foreground or Orphan", *opts.PropagationPolicy)
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		return nil, badRequest("gracePeriodSeconds must be >= 0")
	}
	return opts, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, ri *reqInfo, dryRun bool) {
	opts, err := deleteOptions(r)
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	dryRun = dryRun || len(opts.DryRun) > 0
	out, removed, err := s.doDelete(r.Context(), ri, ri.name, opts, dryRun)
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	if !removed {
		writeObject(w, http.StatusOK, out, ri.res.gvk())
		return
	}
	m, _ := meta.Accessor(out)
	writeStatus(w, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusOK,
		Details: &metav1.StatusDetails{Name: ri.name, Group: ri.res.gvr.Group, Kind: ri.res.gvr.Resource, UID: m.GetUID()}})
}

// finalizerFor records a propagation policy the way Kubernetes does, as a finalizer the
// garbage collector acts on.
func finalizerFor(opts *metav1.DeleteOptions) string {
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationOrphan:
			return metav1.FinalizerOrphanDependents
		case metav1.DeletePropagationForeground:
			return metav1.FinalizerDeleteDependents
		}
	} else if opts.OrphanDependents != nil && *opts.OrphanDependents {
		return metav1.FinalizerOrphanDependents
	}
	return ""
}

// doDelete deletes one object. It returns the object and whether it is gone; an object that
// is kept (graceful pod, finalizers, terminating namespace) comes back with its
// deletionTimestamp set.
func (s *Server) doDelete(ctx context.Context, ri *reqInfo, name string, opts *metav1.DeleteOptions, dryRun bool) (runtime.Object, bool, error) {
	key := ri.res.key(ri.namespace, name)
	for attempt := 0; ; attempt++ {
		cur := ri.res.newObj()
		if err := s.store.Get(ctx, key, cur); err != nil {
			return nil, false, err
		}
		m, _ := meta.Accessor(cur)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, false, apierrors.NewConflict(ri.res.gr(), name, fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, false, apierrors.NewConflict(ri.res.gr(), name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s", *p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		if err := s.authorizeObject(UserFrom(ctx), ri, cur, nil); err != nil {
			return nil, false, err
		}
		next, keep, changed := markDeleted(cur, opts)
		if keep && !changed {
			return cur, false, nil
		}
		if dryRun {
			if keep {
				return next, false, nil
			}
			return cur, true, nil
		}
		rv, uid := m.GetResourceVersion(), m.GetUID()
		pre := &storage.Preconditions{ResourceVersion: &rv, UID: &uid}
		var err error
		out := ri.res.newObj()
		if keep {
			err = s.store.GuaranteedUpdate(ctx, key, out, pre, func(runtime.Object) (runtime.Object, error) { return next, nil })
		} else {
			err = s.store.Delete(ctx, key, out, pre)
		}
		if storage.IsConflict(err) && attempt < 10 {
			continue // changed under us: decide again on the fresh object
		}
		if err != nil {
			return nil, false, err
		}
		if keep {
			return out, false, nil
		}
		if svc, ok := out.(*corev1.Service); ok {
			c, cancel := bgCtx()
			s.alloc.ReleaseUnused(c, svc, nil)
			cancel()
		}
		return out, true, nil
	}
}

// markDeleted computes the object's state after a delete request, and whether it stays
// stored (keep) rather than being removed now.
func markDeleted(cur runtime.Object, opts *metav1.DeleteOptions) (runtime.Object, bool, bool) {
	next := cur.DeepCopyObject()
	m, _ := meta.Accessor(next)
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	var grace int64
	if pod, ok := next.(*corev1.Pod); ok {
		grace = 30
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		if opts.GracePeriodSeconds != nil {
			grace = *opts.GracePeriodSeconds
		}
		// An unbound or finished pod has no agent to wait for.
		if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			grace = 0
		}
		if old := m.GetDeletionGracePeriodSeconds(); old != nil && *old < grace {
			grace = *old // a second delete may only shorten the grace period
		}
	}
	changed := false
	if f := finalizerFor(opts); f != "" && m.GetDeletionTimestamp() == nil && !has(m.GetFinalizers(), f) {
		m.SetFinalizers(append(m.GetFinalizers(), f))
		changed = true
	}
	ns, isNS := next.(*corev1.Namespace)
	needsFinalize := len(m.GetFinalizers()) > 0 || (isNS && len(ns.Spec.Finalizers) > 0)
	if !needsFinalize && grace == 0 {
		return next, false, true
	}
	if m.GetDeletionTimestamp() == nil {
		ts := now
		if grace > 0 {
			ts = metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
		}
		m.SetDeletionTimestamp(&ts)
		changed = true
	}
	if _, ok := next.(*corev1.Pod); ok {
		if old := m.GetDeletionGracePeriodSeconds(); old == nil || *old != grace {
			g := grace
			m.SetDeletionGracePeriodSeconds(&g)
			changed = true
		}
	} else if m.GetDeletionGracePeriodSeconds() == nil {
		z := int64(0)
		m.SetDeletionGracePeriodSeconds(&z)
		changed = true
	}
	if isNS && ns.Status.Phase != corev1.NamespaceTerminating {
		ns.Status.Phase = corev1.NamespaceTerminating
		changed = true
	}
	return next, true, changed
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, ri *reqInfo, dryRun bool) {
	opts, err := deleteOptions(r)
	if err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	dryRun = dryRun || len(opts.DryRun) > 0
	pred, err := s.predicate(ri, r.URL.Query())
	if err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	list := ri.res.newList()
	if err := s.store.List(r.Context(), ri.res.prefix(ri.namespace), storage.ListOptions{Predicate: pred}, list); err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	items, _ := meta.ExtractList(list)
	for _, it := range items {
		m, _ := meta.Accessor(it)
		one := *ri
		one.namespace, one.name = m.GetNamespace(), m.GetName()
		if _, _, err := s.doDelete(r.Context(), &one, m.GetName(), opts, dryRun); err != nil && !storage.IsNotFound(err) {
			writeError(w, err, ri.res.gr(), m.GetName())
			return
		}
	}
	writeStatus(w, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusOK})
}
