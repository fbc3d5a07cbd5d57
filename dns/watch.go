package dns

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

const sliceServiceIndex = "service"

// watcher feeds the index from Service, EndpointSlice and (verified pod
// mode) Pod informers. Informers relist by themselves after watch expiry
// (410 Gone) or an API server restart; until they succeed, the index keeps
// the last state and the server keeps answering from it.
type watcher struct {
	s        *Server
	factory  informers.SharedInformerFactory
	svcs     listersv1.ServiceLister
	slices   cache.Indexer
	synced   []cache.InformerSynced
	syncMu   sync.Mutex // serialises syncService so the last call wins with the newest store state
	onChange func()     // test hook, called after each index update
}

func newWatcher(s *Server) (*watcher, error) {
	w := &watcher{s: s}
	w.factory = informers.NewSharedInformerFactory(s.cfg.Client, 0)

	svcInf := w.factory.Core().V1().Services()
	w.svcs = svcInf.Lister()
	reg, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.serviceEvent(o) },
		UpdateFunc: func(_, o any) { w.serviceEvent(o) },
		DeleteFunc: func(o any) { w.serviceEvent(o) },
	})
	if err != nil {
		return nil, fmt.Errorf("add service handler: %w", err)
	}
	w.synced = append(w.synced, svcInf.Informer().HasSynced, reg.HasSynced)

	sliceInf := w.factory.Discovery().V1().EndpointSlices().Informer()
	if err := sliceInf.AddIndexers(cache.Indexers{sliceServiceIndex: sliceServiceKey}); err != nil {
		return nil, fmt.Errorf("add endpointslice indexer: %w", err)
	}
	w.slices = sliceInf.GetIndexer()
	reg, err = sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { w.sliceEvent(o) },
		UpdateFunc: func(old, o any) {
			// A slice moved to another Service (label change) must
			// leave the old one too.
			if ko, kn := sliceServiceKeyOf(old), sliceServiceKeyOf(o); ko != kn && ko != "" {
				w.sliceEvent(old)
			}
			w.sliceEvent(o)
		},
		DeleteFunc: func(o any) { w.sliceEvent(o) },
	})
	if err != nil {
		return nil, fmt.Errorf("add endpointslice handler: %w", err)
	}
	w.synced = append(w.synced, sliceInf.HasSynced, reg.HasSynced)

	if s.cfg.Pods == PodsVerified {
		podInf := w.factory.Core().V1().Pods().Informer()
		// Keep only what verified pod records need: a cluster's pods are
		// the largest list the server watches.
		if err := podInf.SetTransform(stripPod); err != nil {
			return nil, fmt.Errorf("set pod transform: %w", err)
		}
		reg, err = podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { w.podEvent(o, false) },
			UpdateFunc: func(_, o any) { w.podEvent(o, false) },
			DeleteFunc: func(o any) { w.podEvent(o, true) },
		})
		if err != nil {
			return nil, fmt.Errorf("add pod handler: %w", err)
		}
		w.synced = append(w.synced, podInf.HasSynced, reg.HasSynced)
	}
	return w, nil
}

// run starts the informers and blocks until the first sync (true) or ctx ends.
func (w *watcher) run(ctx context.Context) bool {
	w.factory.Start(ctx.Done())
	return cache.WaitForCacheSync(ctx.Done(), w.synced...)
}

func (w *watcher) shutdown() { w.factory.Shutdown() }

func sliceServiceKeyOf(o any) string {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	sl, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return ""
	}
	name := sl.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return ""
	}
	return sl.Namespace + "/" + name
}

func sliceServiceKey(o any) ([]string, error) {
	if k := sliceServiceKeyOf(o); k != "" {
		return []string{k}, nil
	}
	return nil, nil
}

func (w *watcher) serviceEvent(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	svc, ok := o.(*corev1.Service)
	if !ok {
		return
	}
	w.syncService(svc.Namespace, svc.Name)
}

func (w *watcher) sliceEvent(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	sl, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
		w.syncService(sl.Namespace, name)
	}
}

// syncService recomputes one Service's records from the informer stores.
// Stores are updated before handlers run, and calls are serialised, so the
// last call for a Service always sees its newest state.
func (w *watcher) syncService(ns, name string) {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	src := "svc/" + ns + "/" + name
	svc, err := w.svcs.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		w.s.idx.setSource(src, nil)
		w.changed()
		return
	}
	if err != nil {
		w.s.log.Warn("dns: get service from cache", "service", ns+"/"+name, "err", err)
		return
	}
	var slices []*discoveryv1.EndpointSlice
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		objs, err := w.slices.ByIndex(sliceServiceIndex, ns+"/"+name)
		if err != nil {
			w.s.log.Warn("dns: endpointslices from cache", "service", ns+"/"+name, "err", err)
		}
		for _, o := range objs {
			if sl, ok := o.(*discoveryv1.EndpointSlice); ok {
				slices = append(slices, sl)
			}
		}
	}
	w.s.idx.setSource(src, serviceRecords(w.s.cfg.Zone, w.s.cfg.TTL, svc, slices))
	w.changed()
}

func (w *watcher) changed() {
	if w.onChange != nil {
		w.onChange()
	}
}

func (w *watcher) podEvent(o any, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = d.Obj, true
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	if deleted || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		w.s.idx.setPod(key, pod.Namespace, nil)
		return
	}
	var ips []netip.Addr
	for _, p := range pod.Status.PodIPs {
		if ip, err := netip.ParseAddr(p.IP); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		if ip, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	w.s.idx.setPod(key, pod.Namespace, ips)
}

// stripPod keeps name, namespace, phase and IPs of a Pod.
func stripPod(o any) (any, error) {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion,
		},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs},
	}, nil
}
