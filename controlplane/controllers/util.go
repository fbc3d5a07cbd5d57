package controllers

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// queue is the typed rate-limited work queue every controller uses.
type queue = workqueue.TypedRateLimitingInterface[string]

func newQueue(name string) queue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedMaxOfRateLimiter[string](
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 30*time.Second),
		),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

// runWorkers processes q with sync until ctx ends: failed keys are retried
// with backoff, successful ones forgotten.
func runWorkers(ctx context.Context, log *slog.Logger, name string, q queue, workers int, sync func(context.Context, string) error) {
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	done := make(chan struct{})
	for i := 0; i < workers; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				key, quit := q.Get()
				if quit {
					return
				}
				err := sync(ctx, key)
				if err != nil && ctx.Err() == nil {
					if q.NumRequeues(key) < 15 {
						log.Debug("sync failed, retrying", "controller", name, "key", key, "err", err)
					} else {
						log.Warn("sync failed, retrying", "controller", name, "key", key, "err", err)
					}
					q.AddRateLimited(key)
				} else {
					q.Forget(key)
				}
				q.Done(key)
			}
		}()
	}
	for i := 0; i < workers; i++ {
		<-done
	}
}

func keyOf(obj any) string {
	k, err := toolscache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return ""
	}
	return k
}

// unwrap returns the object inside a DeletedFinalStateUnknown tombstone.
func unwrap(obj any) any {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// randName is a client-side generateName: prefix plus 5 random characters.
func randName(prefix string) string {
	return prefix + utilrand.String(5)
}

func isPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

func podReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func isPodReady(p *corev1.Pod) bool {
	c := podReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// isPodAvailable: ready for at least minReadySeconds. The second value is
// how long until it becomes available (0 if it is or never will be).
func isPodAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) (bool, time.Duration) {
	c := podReadyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false, 0
	}
	if minReadySeconds == 0 {
		return true, 0
	}
	at := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second)
	if !now.Before(at) {
		return true, 0
	}
	return false, at.Sub(now)
}

func nodeReadyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// ownerRefFor is the controller ownerReference a controller puts on what it creates.
func ownerRefFor(obj metav1.Object, apiVersion, kind string) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: obj.GetName(), UID: obj.GetUID(), Controller: &t, BlockOwnerDeletion: &t}
}

// pollUntil is wait.PollUntilContextCancel with an immediate first try.
func pollUntil(ctx context.Context, every time.Duration, cond func(context.Context) (bool, error)) error {
	return wait.PollUntilContextCancel(ctx, every, true, cond)
}
