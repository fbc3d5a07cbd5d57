package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffnet/skiff/controlplane/storage"
)

const namespacesPrefix = "/registry/namespaces/"

// nsCache follows the namespaces with a watch, so that creating an object in a namespace
// does not cost a linearizable etcd read (under write load that read waits for the writes
// ahead of it to apply, which doubled create latency). It answers like Kubernetes'
// NamespaceLifecycle admission plugin answers from its informer: a namespace the cache does
// not know is looked up live (it may have just been created), a terminating one is refused.
// This server's own namespace writes update the cache at once (see observingStore), so a
// client sees its own delete; a namespace marked terminating through another API server
// can admit content for the few milliseconds until the watch delivers it, which the
// namespace controller then deletes, as in Kubernetes.
type nsCache struct {
	mu     sync.RWMutex
	synced bool
	byName map[string]nsEntry
}

type nsEntry struct {
	rv          int64
	terminating bool
	gone        bool // a tombstone: deleted at rv (lookups go live)
}

func newNSCache() *nsCache { return &nsCache{byName: map[string]nsEntry{}} }

// lookup says whether name is known to exist, and whether it is terminating. ok is false
// when the cache cannot answer (not synced, unknown or deleted): ask etcd.
func (c *nsCache) lookup(name string) (terminating, ok bool) {
	if c == nil {
		return false, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, found := c.byName[name]
	if !c.synced || !found || e.gone {
		return false, false
	}
	return e.terminating, true
}

// observe records a namespace's state at its resourceVersion, ignoring anything older than
// what the cache holds.
func (c *nsCache) observe(obj runtime.Object, deleted bool) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || c == nil {
		return
	}
	rv, err := strconv.ParseInt(ns.ResourceVersion, 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, found := c.byName[ns.Name]; found && old.rv > rv {
		return
	}
	c.byName[ns.Name] = nsEntry{rv: rv, gone: deleted,
		terminating: ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating}
}

// run keeps the cache current until ctx ends, re-listing after any watch failure.
func (c *nsCache) run(ctx context.Context, store storage.Interface) {
	for ctx.Err() == nil {
		if err := c.follow(ctx, store); err != nil && ctx.Err() == nil {
			slog.Warn("namespace cache: watch ended, re-listing", "err", err)
		}
		c.mu.Lock()
		c.synced = false
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *nsCache) follow(ctx context.Context, store storage.Interface) error {
	w, err := store.Watch(ctx, namespacesPrefix, storage.ListOptions{AllowWatchBookmarks: true})
	if err != nil {
		return err
	}
	defer w.Stop()
	// The initial ADDED events go into a fresh map, swapped in at the initial-events-end
	// bookmark, so namespaces deleted while the watch was down do not linger.
	initial := map[string]nsEntry{}
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			return errorFromEvent(ev)
		case watch.Bookmark:
			if initial == nil {
				continue
			}
			if m, err := meta.Accessor(ev.Object); err == nil && m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
				c.mu.Lock()
				for name, e := range c.byName {
					// keep what this server wrote meanwhile if it is newer than the listing
					if n, ok := initial[name]; !ok || n.rv < e.rv {
						if ok || e.gone {
							initial[name] = e
						}
					}
				}
				c.byName, c.synced = initial, true
				c.mu.Unlock()
				initial = nil
			}
		case watch.Added, watch.Modified, watch.Deleted:
			if initial != nil {
				if ns, ok := ev.Object.(*corev1.Namespace); ok {
					rv, _ := strconv.ParseInt(ns.ResourceVersion, 10, 64)
					initial[ns.Name] = nsEntry{rv: rv, terminating: ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating}
				}
				continue
			}
			c.observe(ev.Object, ev.Type == watch.Deleted)
		}
	}
	return ctx.Err()
}

func errorFromEvent(ev watch.Event) error {
	return fmt.Errorf("watch namespaces: %w", apierrors.FromObject(ev.Object))
}

// observingStore passes namespace writes made through this server to the cache as they
// succeed, so this server's clients read their own namespace writes.
type observingStore struct {
	storage.Interface
	ns *nsCache
}

func isNamespaceKey(key string) bool {
	return strings.HasPrefix(key, namespacesPrefix)
}

func (o *observingStore) Create(ctx context.Context, key string, obj, out runtime.Object, ttl int64) error {
	err := o.Interface.Create(ctx, key, obj, out, ttl)
	if err == nil && out != nil && isNamespaceKey(key) {
		o.ns.observe(out, false)
	}
	return err
}

func (o *observingStore) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, precond *storage.Preconditions, tryUpdate storage.UpdateFunc) error {
	err := o.Interface.GuaranteedUpdate(ctx, key, out, precond, tryUpdate)
	if err == nil && isNamespaceKey(key) {
		o.ns.observe(out, false)
	}
	return err
}

func (o *observingStore) Delete(ctx context.Context, key string, out runtime.Object, precond *storage.Preconditions) error {
	err := o.Interface.Delete(ctx, key, out, precond)
	if err == nil && isNamespaceKey(key) {
		o.ns.observe(out, true)
	}
	return err
}
