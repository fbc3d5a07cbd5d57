package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// fallbackNamespaced is used when discovery is unavailable. Workload
// controllers come first so nothing recreates pods while we delete them.
var fallbackNamespaced = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Version: "v1", Resource: "replicationcontrollers"},
	{Version: "v1", Resource: "pods"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "endpoints"},
	{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Version: "v1", Resource: "events"},
	{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"},
}

// namespaceController empties a namespace being deleted, then removes the
// "kubernetes" finalizer so the API server can delete the namespace.
type namespaceController struct {
	client    kubernetes.Interface
	dyn       dynamic.Interface
	disc      discovery.DiscoveryInterface
	log       *slog.Logger
	nsLister  corelisters.NamespaceLister
	queue     queue
	synced    toolscache.InformerSynced
	mu        sync.Mutex
	resources []schema.GroupVersionResource
	fetched   time.Time
}

func newNamespaceController(client kubernetes.Interface, dyn dynamic.Interface, f informers.SharedInformerFactory, log *slog.Logger) *namespaceController {
	inf := f.Core().V1().Namespaces()
	c := &namespaceController{client: client, dyn: dyn, disc: client.Discovery(), log: log.With("controller", "namespace"),
		nsLister: inf.Lister(), queue: newQueue("namespace"), synced: inf.Informer().HasSynced}
	inf.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.queue.Add(keyOf(o)) },
		UpdateFunc: func(_, n any) { c.queue.Add(keyOf(n)) },
	})
	return c
}

func (c *namespaceController) run(ctx context.Context, workers int) {
	if !toolscache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	runWorkers(ctx, c.log, "namespace", c.queue, workers, c.sync)
}

// namespacedResources asks discovery (cached 30 s) for every namespaced
// resource that can be listed and deleted.
func (c *namespaceController) namespacedResources() []schema.GroupVersionResource {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resources != nil && time.Since(c.fetched) < 30*time.Second {
		return c.resources
	}
	lists, err := c.disc.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		c.log.Debug("discovery failed, using the built-in resource list", "err", err)
		return fallbackNamespaced
	}
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerbs(r.Verbs, "list", "delete") {
				continue
			}
			out = append(out, gv.WithResource(r.Name))
		}
	}
	if len(out) == 0 {
		return fallbackNamespaced
	}
	rank := map[string]int{"deployments": 0, "replicasets": 1, "replicationcontrollers": 2, "pods": 3}
	sort.SliceStable(out, func(i, j int) bool {
		ri, ok := rank[out[i].Resource]
		if !ok {
			ri = 10
		}
		rj, ok := rank[out[j].Resource]
		if !ok {
			rj = 10
		}
		return ri < rj
	})
	c.resources, c.fetched = out, time.Now()
	return out
}

func hasVerbs(have metav1.Verbs, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (c *namespaceController) sync(ctx context.Context, name string) error {
	ns, err := c.nsLister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil {
		return nil
	}
	remaining, err := c.deleteContent(ctx, name)
	if err != nil {
		return err
	}
	if remaining > 0 {
		c.queue.AddAfter(name, 200*time.Millisecond)
		return nil
	}
	return c.finalize(ctx, name)
}

// deleteContent deletes every object in the namespace and returns how many
// were still there.
func (c *namespaceController) deleteContent(ctx context.Context, ns string) (int, error) {
	remaining := 0
	bg := metav1.DeletePropagationBackground
	var errs []string
	for _, gvr := range c.namespacedResources() {
		list, err := c.dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsForbidden(err) {
				continue
			}
			errs = append(errs, fmt.Sprintf("list %s: %v", gvr.Resource, err))
			continue
		}
		for _, item := range list.Items {
			remaining++
			if item.GetDeletionTimestamp() != nil {
				continue
			}
			err := c.dyn.Resource(gvr).Namespace(ns).Delete(ctx, item.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Sprintf("delete %s %s: %v", gvr.Resource, item.GetName(), err))
			}
		}
	}
	if len(errs) > 0 {
		return remaining, fmt.Errorf("empty namespace %s: %s", ns, strings.Join(errs, "; "))
	}
	return remaining, nil
}

// finalize drops the "kubernetes" finalizer (finalize subresource, or a plain
// update when the server has none) and deletes the namespace if it lingers.
func (c *namespaceController) finalize(ctx context.Context, name string) error {
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []corev1.FinalizerName
	for _, f := range ns.Spec.Finalizers {
		if f != corev1.FinalizerKubernetes {
			keep = append(keep, f)
		}
	}
	if len(keep) != len(ns.Spec.Finalizers) {
		ns.Spec.Finalizers = keep
		if _, err = c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) && !apierrors.IsNotFound(c.getErr(ctx, name)) || apierrors.IsMethodNotSupported(err) {
				_, err = c.client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("finalize namespace %s: %w", name, err)
			}
		}
		c.log.Info("namespace emptied and finalized", "namespace", name)
	}
	if len(keep) == 0 {
		ns, err = c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(ns.Spec.Finalizers) == 0 && len(ns.Finalizers) == 0 {
			if err := c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete finalized namespace %s: %w", name, err)
			}
		}
	}
	return nil
}

func (c *namespaceController) getErr(ctx context.Context, name string) error {
	_, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	return err
}
