// Package storage keeps Kubernetes objects in etcd under /registry/{resource}/{namespace}/{name}.
//
// It follows the shape of k8s.io/apiserver's storage.Interface, trimmed to what skiff needs:
// the resourceVersion of an object is the etcd ModRevision of its key, every write is an etcd
// transaction guarded by Compare(ModRevision), and a watch resumes from a resourceVersion.
package storage

import (
	"context"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Interface is what the registry and API server use to read and write objects.
// Keys are full etcd keys ("/registry/pods/default/web-1"); prefixes end in "/".
type Interface interface {
	// Create stores obj at key if the key does not exist, and decodes the stored object
	// (with its new resourceVersion) into out. A ttl > 0 attaches an etcd lease of that many
	// seconds (used for Events). An existing key gives an error for which IsExists is true.
	Create(ctx context.Context, key string, obj, out runtime.Object, ttl int64) error

	// Get decodes the object at key into out. A missing key gives IsNotFound.
	Get(ctx context.Context, key string, out runtime.Object) error

	// List decodes every object under prefix that matches opts.Predicate into listObj (a
	// *v1.PodList and the like) and sets its resourceVersion to the revision it read at.
	// opts.ResourceVersion "" reads the latest revision; otherwise it reads at that revision
	// (a compacted one gives IsGone). opts.Limit/Continue page through the prefix.
	List(ctx context.Context, prefix string, opts ListOptions, listObj runtime.Object) error

	// GuaranteedUpdate reads key, calls tryUpdate with the current object and writes what it
	// returns with a Compare(ModRevision) transaction, retrying with a fresh read when another
	// writer got there first. precond (may be nil) is checked against the current object on
	// every try. tryUpdate returning an error aborts without writing. The written object is
	// decoded into out. A missing key gives IsNotFound (tryUpdate is not called).
	GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, precond *Preconditions, tryUpdate UpdateFunc) error

	// Delete removes key if precond (may be nil) holds, with a Compare(ModRevision)
	// transaction, and decodes the last stored state into out.
	Delete(ctx context.Context, key string, out runtime.Object, precond *Preconditions) error

	// Watch streams changes under prefix (or to the single key when prefix does not end in
	// "/") that match opts.Predicate. opts.ResourceVersion "" or "0" starts with a synthetic
	// ADDED event for every current object, then follows; any other value streams every change
	// after that revision. A compacted revision yields one watch.Error event carrying a
	// *metav1.Status with code 410 (Gone) and then closes. Bookmarks are sent when
	// opts.AllowWatchBookmarks is set. An object that stops matching the predicate is sent as
	// DELETED, one that starts matching as ADDED, as the Kubernetes watch cache does.
	Watch(ctx context.Context, prefix string, opts ListOptions) (watch.Interface, error)

	// Count returns how many keys are under prefix.
	Count(ctx context.Context, prefix string) (int64, error)
}

// UpdateFunc computes the new object from the current one. It must not modify current in
// place unless it returns it.
type UpdateFunc func(current runtime.Object) (runtime.Object, error)

// Preconditions must hold for an update or delete to go ahead.
type Preconditions struct {
	UID             *types.UID
	ResourceVersion *string
}

// AttrFunc returns the labels and the selectable fields of an object.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set, error)

// Predicate selects objects by label and field.
type Predicate struct {
	Label    labels.Selector // nil means everything
	Field    fields.Selector // nil means everything
	GetAttrs AttrFunc        // required when Field is not empty
}

// ListOptions qualifies List and Watch.
type ListOptions struct {
	ResourceVersion     string
	Predicate           Predicate
	Limit               int64
	Continue            string
	AllowWatchBookmarks bool
}
