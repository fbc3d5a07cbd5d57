package apiserver

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffnet/skiff/controlplane/storage"
)

func (s *Server) resourceFor(obj runtime.Object) (*resource, error) {
	for _, r := range s.byPath {
		if fmt.Sprintf("%T", r.newObj()) == fmt.Sprintf("%T", obj) {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%T is not a served resource", obj)
}

// Ensure creates obj through the normal create path (defaults, validation, allocation) as
// the admin. When it exists already it is left alone, unless update is set, in which case
// the stored object is replaced by obj (for objects the server owns, like the kubernetes
// Service's endpoints, whose address may change between runs).
func (s *Server) Ensure(ctx context.Context, obj runtime.Object, update bool) error {
	res, err := s.resourceFor(obj)
	if err != nil {
		return err
	}
	m, _ := meta.Accessor(obj)
	ctx = withUser(ctx, Admin)
	ri := &reqInfo{verb: "create", res: res, namespace: m.GetNamespace(), name: m.GetName()}
	err = s.store.Get(ctx, res.key(ri.namespace, ri.name), res.newObj())
	if storage.IsNotFound(err) {
		_, err = s.doCreate(ctx, ri, obj.DeepCopyObject(), false)
		if err == nil || !isAlreadyExists(err) {
			if err != nil {
				return fmt.Errorf("create %s %s/%s: %w", res.kind, m.GetNamespace(), m.GetName(), err)
			}
			return nil
		}
	} else if err != nil {
		return fmt.Errorf("read %s %s/%s: %w", res.kind, m.GetNamespace(), m.GetName(), err)
	}
	if !update {
		return nil
	}
	ri.verb = "update"
	_, _, err = s.doUpdate(ctx, ri, false, func(runtime.Object) (runtime.Object, error) { return obj.DeepCopyObject(), nil })
	if err != nil {
		return fmt.Errorf("update %s %s/%s: %w", res.kind, m.GetNamespace(), m.GetName(), err)
	}
	return nil
}

func isAlreadyExists(err error) bool {
	if storage.IsExists(err) {
		return true
	}
	st := toStatus(err, groupResource(""), "")
	return st.Reason == "AlreadyExists"
}
