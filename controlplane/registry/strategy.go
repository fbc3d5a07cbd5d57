// Package registry holds what the API server applies to objects before they are stored:
// defaulting, validation, the create/update rules of each resource (status subresource,
// generation, generateName) and the ClusterIP/NodePort allocators.
package registry

import (
	"crypto/rand"
	"math/big"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiffnet/skiff/controlplane/storage"
)

// Strategy is the per-resource part of create and update.
type Strategy struct {
	// NameFn validates metadata.name (DNS-1123 subdomain for most kinds).
	NameFn apivalidation.ValidateNameFunc
	// HasStatus: the resource has a status subresource; writes to the main resource keep the
	// stored status, writes to /status keep everything else.
	HasStatus bool
	// ResetStatusOnCreate drops the status a client sends with a create.
	ResetStatusOnCreate bool
	// Generation: metadata.generation starts at 1 and is bumped when spec changes.
	Generation bool
	// AllowCreateOnUpdate: a PUT of a missing object creates it (endpoints, events, leases).
	AllowCreateOnUpdate bool
	// TTL in seconds for stored objects (events).
	TTL int64
	// Attrs gives labels and selectable fields.
	Attrs storage.AttrFunc
}

// PrepareForCreate sets the server-owned metadata, resets status where the resource says so,
// and applies defaults.
func PrepareForCreate(s *Strategy, obj runtime.Object) {
	m, _ := meta.Accessor(obj)
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + randomSuffix(5))
	}
	m.SetResourceVersion("")
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	if s.Generation {
		m.SetGeneration(1)
	} else {
		m.SetGeneration(0)
	}
	if s.ResetStatusOnCreate {
		resetStatus(obj)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		o.Status.Phase = corev1.PodPending
	case *corev1.Namespace:
		o.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		if len(o.Spec.Finalizers) == 0 {
			o.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		}
	case *corev1.Service:
		if len(o.Spec.ClusterIPs) > 0 && o.Spec.ClusterIP == "" {
			o.Spec.ClusterIP = o.Spec.ClusterIPs[0]
		}
	}
	Default(obj)
}

// PrepareForUpdate carries server-owned metadata (and, for resources with a status
// subresource, the status) from old into obj, and bumps generation on a spec change.
func PrepareForUpdate(s *Strategy, obj, old runtime.Object) {
	m, _ := meta.Accessor(obj)
	om, _ := meta.Accessor(old)
	m.SetUID(om.GetUID())
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	m.SetGeneration(om.GetGeneration())
	m.SetSelfLink("")
	if s.HasStatus {
		setStatus(obj, statusOf(old))
	}
	switch o := obj.(type) {
	case *corev1.Namespace:
		// spec.finalizers change only through /finalize.
		o.Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
		o.Status = old.(*corev1.Namespace).Status
	case *corev1.Service:
		carryServiceAllocations(o, old.(*corev1.Service))
	}
	Default(obj)
	if s.Generation && !reflect.DeepEqual(specOf(obj), specOf(old)) {
		m.SetGeneration(om.GetGeneration() + 1)
	}
}

// PrepareForStatusUpdate returns old with obj's status (and obj's resourceVersion, which
// the caller uses as a precondition): a status write changes nothing else.
func PrepareForStatusUpdate(obj, old runtime.Object) runtime.Object {
	out := old.DeepCopyObject()
	setStatus(out, statusOf(obj))
	m, _ := meta.Accessor(out)
	nm, _ := meta.Accessor(obj)
	m.SetResourceVersion(nm.GetResourceVersion())
	return out
}

// PrepareForFinalize returns old with obj's spec.finalizers (namespaces' /finalize).
func PrepareForFinalize(obj, old runtime.Object) runtime.Object {
	out := old.DeepCopyObject().(*corev1.Namespace)
	n := obj.(*corev1.Namespace)
	out.Spec.Finalizers = n.Spec.Finalizers
	out.ResourceVersion = n.ResourceVersion
	return out
}

func structField(obj runtime.Object, name string) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.Elem().FieldByName(name)
}

func statusOf(obj runtime.Object) reflect.Value { return structField(obj, "Status") }

func specOf(obj runtime.Object) any {
	f := structField(obj, "Spec")
	if !f.IsValid() {
		return nil
	}
	return f.Interface()
}

func setStatus(obj runtime.Object, st reflect.Value) {
	f := structField(obj, "Status")
	if f.IsValid() && st.IsValid() && f.CanSet() {
		f.Set(st)
	}
}

func resetStatus(obj runtime.Object) {
	f := structField(obj, "Status")
	if f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}

const suffixChars = "bcdfghjklmnpqrstvwxz2456789"

func randomSuffix(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(suffixChars))))
		b[i] = suffixChars[k.Int64()]
	}
	return string(b)
}
