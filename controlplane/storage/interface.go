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
//
// Objects handed out (out, list items, watch objects) carry the resourceVersion of their
// revision and, with DefaultCodec, the apiVersion/kind they were stored with. The
// resourceVersion of an object passed in is never stored and the object is not modified.
// Failures are classified by IsNotFound, IsExists, IsConflict, IsGone, IsInvalidObj,
// IsBadRequest and IsTooLargeResourceVersion; other errors are etcd/transport failures.
type Interface interface {
	// Create stores obj at key if the key does not exist, and decodes the stored object
	// (with its new resourceVersion) into out. A ttl > 0 attaches an etcd lease of that many
	// seconds (used for Events). An existing key gives an error for which IsExists is true.
	// out may be nil.
	Create(ctx context.Context, key string, obj, out runtime.Object, ttl int64) error

	// Get decodes the object at key into out. A missing key gives IsNotFound.
	Get(ctx context.Context, key string, out runtime.Object) error

	// List decodes every object under prefix that matches opts.Predicate into listObj (a
	// *v1.PodList and the like) and sets its resourceVersion to the revision it read at.
	// opts.ResourceVersion "" reads the latest revision; otherwise it reads at that revision
	// (a compacted one gives IsGone, a future one IsTooLargeResourceVersion; "0" is the latest
	// too). opts.Limit/Continue page through the prefix: every page reads at the revision of
	// the first one, Continue is set while more items may follow, and RemainingItemCount when
	// there is no predicate. A prefix not ending in "/" lists just that key. A malformed
	// resourceVersion or continue token, or a continue with another resourceVersion, gives
	// IsBadRequest.
	List(ctx context.Context, prefix string, opts ListOptions, listObj runtime.Object) error

	// GuaranteedUpdate reads key, calls tryUpdate with the current object and writes what it
	// returns with a Compare(ModRevision) transaction, retrying with a fresh read when another
	// writer got there first. precond (may be nil) is checked against the current object on
	// every try. tryUpdate returning an error aborts without writing. The written object is
	// decoded into out. A missing key gives IsNotFound (tryUpdate is not called).
	GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, precond *Preconditions, tryUpdate UpdateFunc) error

	// Delete removes key if precond (may be nil) holds, with a Compare(ModRevision)
	// transaction (retried with a fresh read when another writer got there first), and decodes
	// the last stored state into out, with the revision of the delete as its resourceVersion.
	// A missing key gives IsNotFound; a failed precondition IsConflict.
	Delete(ctx context.Context, key string, out runtime.Object, precond *Preconditions) error

	// Watch streams changes under prefix (or to the single key when prefix does not end in
	// "/") that match opts.Predicate. opts.ResourceVersion "" or "0" starts with a synthetic
	// ADDED event for every current object, then follows; any other value streams every change
	// after that revision. A compacted revision yields one watch.Error event carrying a
	// *metav1.Status with code 410 (Gone) and then closes. Bookmarks are sent when
	// opts.AllowWatchBookmarks is set. An object that stops matching the predicate is sent as
	// DELETED (the old state at the new revision), one that starts matching as ADDED, as the
	// Kubernetes watch cache does. With AllowWatchBookmarks, the initial ADDED events are
	// followed by a BOOKMARK annotated k8s.io/initial-events-end=true (for WatchList), and
	// later BOOKMARKs come every BookmarkInterval when etcd's revision has moved. Stop ends the
	// watch, waits for its goroutines and closes the channel; so does cancelling ctx.
	Watch(ctx context.Context, prefix string, opts ListOptions) (watch.Interface, error)

	// Count returns how many keys are under prefix (a plain string prefix).
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
	GetAttrs AttrFunc        // nil: DefaultAttrs (labels, metadata.name, metadata.namespace)
}

// ListOptions qualifies List and Watch.
type ListOptions struct {
	ResourceVersion     string
	Predicate           Predicate
	Limit               int64
	Continue            string
	AllowWatchBookmarks bool
}
