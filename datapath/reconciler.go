package datapath

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// resyncEvery is how often the reconciler rewrites the maps from its caches, repairing any
// drift (a map entry deleted by hand, a failed update).
const resyncEvery = 5 * time.Minute

// RunReconciler follows Services and EndpointSlices with informers (list+watch) and keeps the
// maps in step: one full Sync when the caches are filled (removing whatever a previous agent
// left), then one UpsertService/DeleteService per changed Service. It returns when ctx ends.
func RunReconciler(ctx context.Context, client kubernetes.Interface, dp *Datapath) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[nsName](),
		workqueue.TypedRateLimitingQueueConfig[nsName]{Name: "datapath"})
	defer q.ShutDown()

	enqueueSvc := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if s, ok := obj.(*corev1.Service); ok {
			q.Add(nsName{s.Namespace, s.Name})
		}
	}
	enqueueSlice := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			if name := s.Labels[serviceLabel]; name != "" {
				q.Add(nsName{s.Namespace, name})
			}
		}
	}
	handler := func(f func(any)) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, n any) { f(n) }, DeleteFunc: f}
	}
	if _, err := svcInf.Informer().AddEventHandler(handler(enqueueSvc)); err != nil {
		return fmt.Errorf("datapath reconciler: %w", err)
	}
	if _, err := sliceInf.Informer().AddEventHandler(handler(enqueueSlice)); err != nil {
		return fmt.Errorf("datapath reconciler: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced) {
		return ctx.Err()
	}
	svcLister, sliceLister := svcInf.Lister(), sliceInf.Lister()

	fullSync := func() error {
		svcs, err := svcLister.List(labels.Everything())
		if err != nil {
			return err
		}
		slices, err := sliceLister.List(labels.Everything())
		if err != nil {
			return err
		}
		return dp.Sync(svcs, slices)
	}
	if err := fullSync(); err != nil {
		// Bad Services are reported and skipped; the rest is programmed.
		slog.Warn("datapath: initial sync", "err", err)
	}
	slog.Info("datapath reconciler synced")

	go func() {
		t := time.NewTicker(resyncEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				q.ShutDown()
				return
			case <-t.C:
				if err := fullSync(); err != nil {
					slog.Warn("datapath: periodic resync", "err", err)
				}
			}
		}
	}()

	sync := func(n nsName) error {
		svc, err := svcLister.Services(n.Namespace).Get(n.Name)
		if apierrors.IsNotFound(err) {
			return dp.DeleteService(n.Namespace, n.Name)
		}
		if err != nil {
			return err
		}
		sel := labels.SelectorFromSet(labels.Set{serviceLabel: n.Name})
		slices, err := sliceLister.EndpointSlices(n.Namespace).List(sel)
		if err != nil {
			return err
		}
		return dp.UpsertService(svc, slices)
	}
	for {
		n, quit := q.Get()
		if quit {
			return ctx.Err()
		}
		if err := sync(n); err != nil {
			slog.Warn("datapath: sync service", "service", n.Namespace+"/"+n.Name, "err", err)
			if q.NumRequeues(n) < 10 {
				q.AddRateLimited(n)
			} else {
				q.Forget(n)
			}
		} else {
			q.Forget(n)
		}
		q.Done(n)
	}
}
