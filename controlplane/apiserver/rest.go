package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiffnet/skiff/controlplane/registry"
	"github.com/skiffnet/skiff/controlplane/storage"
)

var namespacesGR = schema.GroupResource{Resource: "namespaces"}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	if ri.res.namespaced && ri.namespace == "" && ri.verb != "list" && ri.verb != "watch" {
		writeError(w, apierrors.NewNotFound(namespacesGR, ""), ri.res.gr(), ri.name)
		return
	}
	switch ri.sub {
	case "log":
		if ri.verb != "get" {
			writeError(w, methodNotAllowed(r.Method, "pods/log"), ri.res.gr(), ri.name)
			return
		}
		s.podLog(w, r, ri)
		return
	case "exec":
		s.podExec(w, r, ri)
		return
	case "binding":
		if ri.verb != "create" {
			writeError(w, methodNotAllowed(r.Method, "pods/binding"), ri.res.gr(), ri.name)
			return
		}
		s.bind(w, r, ri)
		return
	}
	if ri.sub != "" && ri.verb != "get" && ri.verb != "update" && ri.verb != "patch" {
		writeError(w, methodNotAllowed(r.Method, ri.res.gvr.Resource+"/"+ri.sub), ri.res.gr(), ri.name)
		return
	}
	if ri.sub == "finalize" && ri.verb != "update" {
		writeError(w, methodNotAllowed(r.Method, "namespaces/finalize"), ri.res.gr(), ri.name)
		return
	}
	dryRun, err := parseDryRun(r.URL.Query())
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	switch ri.verb {
	case "get":
		s.get(w, r, ri)
	case "list":
		s.list(w, r, ri)
	case "watch":
		s.watch(w, r, ri)
	case "create":
		s.create(w, r, ri, dryRun)
	case "update":
		s.update(w, r, ri, dryRun)
	case "patch":
		s.patch(w, r, ri, dryRun)
	case "delete":
		s.delete(w, r, ri, dryRun)
	case "deletecollection":
		s.deleteCollection(w, r, ri, dryRun)
	}
}

func parseDryRun(q url.Values) (bool, error) {
	for _, v := range q["dryRun"] {
		if v != metav1.DryRunAll {
			return false, badRequest("dryRun=%q is not supported: use dryRun=All", v)
		}
		return true, nil
	}
	return false, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	obj := ri.res.newObj()
	if err := s.store.Get(r.Context(), ri.res.key(ri.namespace, ri.name), obj); err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	if ri.sub == "scale" {
		sc, err := toScale(obj)
		if err != nil {
			writeError(w, err, ri.res.gr(), ri.name)
			return
		}
		writeObject(w, http.StatusOK, sc, scaleGVK)
		return
	}
	writeObject(w, http.StatusOK, obj, ri.res.gvk())
}

// predicate builds the label and field selection of a list or watch.
func (s *Server) predicate(ri *reqInfo, q url.Values) (storage.Predicate, error) {
	p := storage.Predicate{GetAttrs: ri.res.strategy.Attrs}
	if ls := q.Get("labelSelector"); ls != "" {
		sel, err := labels.Parse(ls)
		if err != nil {
			return p, badRequest("labelSelector %q: %v", ls, err)
		}
		p.Label = sel
	}
	fs := q.Get("fieldSelector")
	if ri.verb == "watch" && ri.name != "" {
		// the legacy /watch/.../NAME form watches one object
		if fs != "" {
			fs += ","
		}
		fs += "metadata.name=" + ri.name
	}
	if fs != "" {
		sel, err := fields.ParseSelector(fs)
		if err != nil {
			return p, badRequest("fieldSelector %q: %v", fs, err)
		}
		for _, req := range sel.Requirements() {
			if !ri.res.fieldOK(req.Field) {
				return p, badRequest("field label not supported: %s (%s support metadata.name, metadata.namespace%s)", req.Field, ri.res.gvr.Resource, listFields(ri.res.fields))
			}
		}
		p.Field = sel
	}
	return p, nil
}

func listFields(fs []string) string {
	out := ""
	for _, f := range fs {
		out += ", " + f
	}
	return out
}

func (r *resource) fieldOK(f string) bool {
	if f == "metadata.name" || (f == "metadata.namespace" && r.namespaced) {
		return true
	}
	for _, x := range r.fields {
		if x == f {
			return true
		}
	}
	return false
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	q := r.URL.Query()
	pred, err := s.predicate(ri, q)
	if err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	opts := storage.ListOptions{Predicate: pred, Continue: q.Get("continue")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n < 0 {
			writeError(w, badRequest("limit=%q: want a non-negative integer", l), ri.res.gr(), "")
			return
		}
		opts.Limit = n
	}
	// "0" and NotOlderThan are served from the latest revision, which is never older; only
	// Exact reads at an old revision.
	if rv := q.Get("resourceVersion"); rv != "" && rv != "0" && q.Get("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
		opts.ResourceVersion = rv
	}
	list := ri.res.newList()
	if err := s.store.List(r.Context(), ri.res.prefix(ri.namespace), opts, list); err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	if meta.LenList(list) == 0 {
		meta.SetList(list, []runtime.Object{})
	}
	writeObject(w, http.StatusOK, list, ri.res.listGVK())
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, ri *reqInfo, dryRun bool) {
	obj, err := decode(r, ri.res.gvk(), ri.res.newObj())
	if err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	m, _ := meta.Accessor(obj)
	if ri.res.namespaced {
		if ns := m.GetNamespace(); ns != "" && ns != ri.namespace {
			writeError(w, badRequest("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", ns, ri.namespace), ri.res.gr(), m.GetName())
			return
		}
		m.SetNamespace(ri.namespace)
	} else {
		m.SetNamespace("")
	}
	out, err := s.doCreate(r.Context(), ri, obj, dryRun)
	if err != nil {
		writeError(w, err, ri.res.gr(), m.GetName())
		return
	}
	writeObject(w, http.StatusCreated, out, ri.res.gvk())
}

// checkNamespace refuses content in a missing (404) or terminating (403) namespace.
func (s *Server) checkNamespace(ctx context.Context, ri *reqInfo, name string) error {
	if !ri.res.namespaced {
		return nil
	}
	terminating, ok := s.ns.lookup(ri.namespace)
	if !ok {
		ns := &corev1.Namespace{}
		if err := s.store.Get(ctx, namespacesPrefix+ri.namespace, ns); err != nil {
			if storage.IsNotFound(err) {
				return apierrors.NewNotFound(namespacesGR, ri.namespace)
			}
			return err
		}
		terminating = ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating
	}
	if terminating {
		e := apierrors.NewForbidden(ri.res.gr(), name, fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ri.namespace))
		e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{Type: corev1.NamespaceTerminatingCause, Message: "namespace " + ri.namespace + " is being terminated", Field: "metadata.namespace"})
		return e
	}
	return nil
}

func (s *Server) validateNew(ri *reqInfo, obj runtime.Object) field.ErrorList {
	m, _ := meta.Accessor(obj)
	om := metaOf(obj)
	errs := apivalidation.ValidateObjectMeta(om, ri.res.namespaced, ri.res.strategy.NameFn, field.NewPath("metadata"))
	_ = m
	return append(errs, registry.Validate(obj)...)
}

func metaOf(obj runtime.Object) *metav1.ObjectMeta {
	if o, ok := obj.(metav1.ObjectMetaAccessor); ok {
		return o.GetObjectMeta().(*metav1.ObjectMeta)
	}
	return &metav1.ObjectMeta{}
}

// doCreate runs the create path: namespace check, defaults, validation, allocation, store.
func (s *Server) doCreate(ctx context.Context, ri *reqInfo, obj runtime.Object, dryRun bool) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	if err := s.checkNamespace(ctx, ri, m.GetName()); err != nil {
		return nil, err
	}
	registry.PrepareForCreate(ri.res.strategy, obj)
	if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default" // what the ServiceAccount admission plugin does
	}
	errs := s.validateNew(ri, obj)
	if len(errs) > 0 {
		return nil, invalid(ri.res.gvk().GroupKind(), m.GetName(), errs)
	}
	if err := s.authorizeObject(UserFrom(ctx), ri, nil, obj); err != nil {
		return nil, err
	}
	var txn *registry.Txn
	if svc, ok := obj.(*corev1.Service); ok {
		txn = s.alloc.NewTxn()
		errs, err := txn.Allocate(ctx, svc, nil, dryRun)
		if err != nil || len(errs) > 0 {
			c, cancel := bgCtx()
			txn.Rollback(c)
			cancel()
			if err != nil {
				return nil, err
			}
			return nil, invalid(ri.res.gvk().GroupKind(), m.GetName(), errs)
		}
	}
	if dryRun {
		return obj, nil
	}
	out := ri.res.newObj()
	if err := s.store.Create(ctx, ri.res.key(m.GetNamespace(), m.GetName()), obj, out, ri.res.strategy.TTL); err != nil {
		if txn != nil {
			c, cancel := bgCtx()
			txn.Rollback(c)
			cancel()
		}
		return nil, err
	}
	if ns, ok := out.(*corev1.Namespace); ok {
		s.ensureDefaultServiceAccount(ctx, ns.Name)
	}
	return out, nil
}

// ensureDefaultServiceAccount gives each namespace the empty "default" ServiceAccount pods
// name by default (the ServiceAccount controller's job in Kubernetes).
func (s *Server) ensureDefaultServiceAccount(ctx context.Context, ns string) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
	registry.PrepareForCreate(&registry.Strategy{}, sa)
	err := s.store.Create(ctx, "/registry/serviceaccounts/"+ns+"/default", sa, &corev1.ServiceAccount{}, 0)
	if err != nil && !storage.IsExists(err) {
		s.logWarn("create default service account", "namespace", ns, "err", err)
	}
}

var errDryRun = errors.New("dry run")

// viewFunc turns the current (sub)resource view into the one to write: the decoded body of a
// PUT, or the current view with a patch applied.
type viewFunc func(cur runtime.Object) (runtime.Object, error)

func (s *Server) update(w http.ResponseWriter, r *http.Request, ri *reqInfo, dryRun bool) {
	gvk, into := ri.res.gvk(), ri.res.newObj()
	if ri.sub == "scale" {
		gvk, into = scaleGVK, newScale()
	}
	obj, err := decode(r, gvk, into)
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	m, _ := meta.Accessor(obj)
	if m.GetName() != ri.name {
		writeError(w, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), ri.name), ri.res.gr(), ri.name)
		return
	}
	if ri.res.namespaced {
		if ns := m.GetNamespace(); ns != "" && ns != ri.namespace {
			writeError(w, badRequest("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", ns, ri.namespace), ri.res.gr(), ri.name)
			return
		}
		m.SetNamespace(ri.namespace)
	}
	out, created, err := s.doUpdate(r.Context(), ri, dryRun, func(runtime.Object) (runtime.Object, error) { return obj.DeepCopyObject(), nil })
	if err != nil && storage.IsNotFound(err) && ri.res.strategy.AllowCreateOnUpdate && ri.sub == "" {
		m.SetResourceVersion("")
		out, err = s.doCreate(r.Context(), ri, obj, dryRun)
		created = true
	}
	s.writeUpdateResult(w, ri, out, created, err)
}

func (s *Server) writeUpdateResult(w http.ResponseWriter, ri *reqInfo, out runtime.Object, created bool, err error) {
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	if ri.sub == "scale" {
		sc, err := toScale(out)
		if err != nil {
			writeError(w, err, ri.res.gr(), ri.name)
			return
		}
		writeObject(w, code, sc, scaleGVK)
		return
	}
	writeObject(w, code, out, ri.res.gvk())
}

func conflict(ri *reqInfo, msg string) error {
	return apierrors.NewConflict(ri.res.gr(), ri.name, errors.New(msg))
}

// doUpdate is the update path shared by PUT and PATCH of the resource and its subresources.
func (s *Server) doUpdate(ctx context.Context, ri *reqInfo, dryRun bool, next viewFunc) (runtime.Object, bool, error) {
	u := UserFrom(ctx)
	key := ri.res.key(ri.namespace, ri.name)
	var txn *registry.Txn
	if ri.res.gvr.Resource == "services" && (ri.sub == "" || ri.sub == "status") {
		txn = s.alloc.NewTxn()
	}
	var old, dry runtime.Object
	out := ri.res.newObj()
	err := s.store.GuaranteedUpdate(ctx, key, out, nil, func(cur runtime.Object) (runtime.Object, error) {
		if txn != nil {
			txn.Rollback(ctx)
		}
		cm, _ := meta.Accessor(cur)
		view := cur.DeepCopyObject()
		if ri.sub == "scale" {
			sc, err := toScale(view)
			if err != nil {
				return nil, err
			}
			view = sc
		}
		nv, err := next(view)
		if err != nil {
			return nil, err
		}
		nm, _ := meta.Accessor(nv)
		if rv := nm.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
			return nil, conflict(ri, "the object has been modified; please apply your changes to the latest version and try again")
		}
		if nm.GetResourceVersion() == "" {
			nm.SetResourceVersion(cm.GetResourceVersion()) // an unconditional update
		}
		if uid := nm.GetUID(); uid != "" && uid != cm.GetUID() {
			return nil, conflict(ri, fmt.Sprintf("Precondition failed: UID in precondition: %s, UID in object meta: %s", uid, cm.GetUID()))
		}
		if nm.GetName() != "" && nm.GetName() != ri.name {
			return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", nm.GetName(), ri.name)
		}
		var obj runtime.Object
		switch ri.sub {
		case "":
			obj = nv
			m, _ := meta.Accessor(obj)
			m.SetName(ri.name)
			m.SetNamespace(cm.GetNamespace())
			registry.PrepareForUpdate(ri.res.strategy, obj, cur)
		case "status":
			obj = registry.PrepareForStatusUpdate(nv, cur)
		case "scale":
			obj, err = applyScale(cur, nv)
			if err != nil {
				return nil, err
			}
		case "finalize":
			obj = registry.PrepareForFinalize(nv, cur)
		}
		errs := s.validateNew(ri, obj)
		errs = append(errs, apivalidation.ValidateObjectMetaUpdate(metaOf(obj), metaOf(cur), field.NewPath("metadata"))...)
		errs = append(errs, registry.ValidateUpdate(obj, cur)...)
		if len(errs) > 0 {
			return nil, invalid(ri.res.gvk().GroupKind(), ri.name, errs)
		}
		if err := s.authorizeObject(u, ri, cur, obj); err != nil {
			return nil, err
		}
		if txn != nil {
			errs, err := txn.Allocate(ctx, obj.(*corev1.Service), cur.(*corev1.Service), dryRun)
			if err != nil {
				return nil, err
			}
			if len(errs) > 0 {
				return nil, invalid(ri.res.gvk().GroupKind(), ri.name, errs)
			}
		}
		if dryRun {
			dry = obj
			return nil, errDryRun
		}
		old = cur
		return obj, nil
	})
	if errors.Is(err, errDryRun) {
		return dry, false, nil
	}
	if err != nil {
		if txn != nil {
			c, cancel := bgCtx()
			txn.Rollback(c)
			cancel()
		}
		return nil, false, err
	}
	if txn != nil {
		c, cancel := bgCtx()
		s.alloc.ReleaseUnused(c, old.(*corev1.Service), out.(*corev1.Service))
		cancel()
	}
	if finished(out) {
		if err := s.remove(ctx, ri, out); err != nil && !storage.IsNotFound(err) && !storage.IsConflict(err) {
			return nil, false, err
		}
	}
	return out, false, nil
}

// finished reports whether an object marked for deletion has nothing left holding it.
func finished(obj runtime.Object) bool {
	m, err := meta.Accessor(obj)
	if err != nil || m.GetDeletionTimestamp() == nil || len(m.GetFinalizers()) > 0 {
		return false
	}
	if g := m.GetDeletionGracePeriodSeconds(); g != nil && *g > 0 {
		return false // a graceful pod waits for its agent's final delete
	}
	if ns, ok := obj.(*corev1.Namespace); ok && len(ns.Spec.Finalizers) > 0 {
		return false
	}
	return true
}

// remove deletes the stored object if it is still the version given, and releases what it
// held.
func (s *Server) remove(ctx context.Context, ri *reqInfo, obj runtime.Object) error {
	m, _ := meta.Accessor(obj)
	rv, uid := m.GetResourceVersion(), m.GetUID()
	out := ri.res.newObj()
	if err := s.store.Delete(ctx, ri.res.key(m.GetNamespace(), m.GetName()), out, &storage.Preconditions{ResourceVersion: &rv, UID: &uid}); err != nil {
		return err
	}
	if svc, ok := out.(*corev1.Service); ok {
		c, cancel := bgCtx()
		s.alloc.ReleaseUnused(c, svc, nil)
		cancel()
	}
	return nil
}
