// Package scheduler binds pending pods to nodes: filters (resources, node
// selector and required affinity, taints, unschedulable, host ports, ready),
// scores (least allocated, spreading one owner's pods, topology spread) and
// binds through the pods/binding subresource.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// DefaultSchedulerName is the spec.schedulerName this scheduler serves ("" too).
const DefaultSchedulerName = "default-scheduler"

// Options tune the scheduler; the zero value is usable.
type Options struct {
	SchedulerName string
	Logger        *slog.Logger
	// BindWorkers bounds concurrent binding and status calls (default 64).
	BindWorkers int
	// PercentageOfNodesToScore: 0 = upstream's adaptive value.
	PercentageOfNodesToScore int32
	// UnschedulableRetry is how often unschedulable pods are retried even
	// without a cluster change (default 30s).
	UnschedulableRetry time.Duration
}

// Scheduler is the scheduling loop over informer caches.
type Scheduler struct {
	client    kubernetes.Interface
	opts      Options
	log       *slog.Logger
	cache     *cache
	queue     workqueue.TypedRateLimitingInterface[string]
	podLister corelisters.PodLister
	synced    []toolscache.InformerSynced

	mu            sync.Mutex
	unschedulable map[string]struct{}

	// Used only by the single scheduling goroutine.
	nextStart   int
	feasibleBuf []candidate

	bindSem   chan struct{}
	bindWG    sync.WaitGroup
	scheduled atomic.Int64
}

// Run is the standalone entry point: its own informers, until ctx ends.
func Run(ctx context.Context, client kubernetes.Interface, opts Options) error {
	f := informers.NewSharedInformerFactory(client, 0)
	s := New(client, f, opts)
	f.Start(ctx.Done())
	defer f.Shutdown()
	return s.Run(ctx)
}

// New registers the scheduler's handlers on f; call f.Start and then Run.
func New(client kubernetes.Interface, f informers.SharedInformerFactory, opts Options) *Scheduler {
	if opts.SchedulerName == "" {
		opts.SchedulerName = DefaultSchedulerName
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BindWorkers <= 0 {
		opts.BindWorkers = 64
	}
	if opts.UnschedulableRetry <= 0 {
		opts.UnschedulableRetry = 30 * time.Second
	}
	s := &Scheduler{
		client:        client,
		opts:          opts,
		log:           opts.Logger.With("component", "scheduler"),
		cache:         newCache(),
		unschedulable: map[string]struct{}{},
		bindSem:       make(chan struct{}, opts.BindWorkers),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "scheduler"}),
	}
	pods := f.Core().V1().Pods()
	nodes := f.Core().V1().Nodes()
	s.podLister = pods.Lister()
	pods.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.podChanged(nil, o.(*corev1.Pod)) },
		UpdateFunc: func(o, n any) { s.podChanged(o.(*corev1.Pod), n.(*corev1.Pod)) },
		DeleteFunc: s.podDeleted,
	})
	nodes.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { s.cache.setNode(o.(*corev1.Node)); s.flushUnschedulable() },
		UpdateFunc: func(o, n any) {
			on, nn := o.(*corev1.Node), n.(*corev1.Node)
			s.cache.setNode(nn)
			if nodeSchedulingChanged(on, nn) {
				s.flushUnschedulable()
			}
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if n, ok := o.(*corev1.Node); ok {
				s.cache.removeNode(n.Name)
			}
		},
	})
	s.synced = []toolscache.InformerSynced{pods.Informer().HasSynced, nodes.Informer().HasSynced}
	return s
}

// Scheduled is the number of successful bindings so far.
func (s *Scheduler) Scheduled() int64 { return s.scheduled.Load() }

func (s *Scheduler) responsible(p *corev1.Pod) bool {
	return p.Spec.NodeName == "" && p.DeletionTimestamp == nil &&
		(p.Spec.SchedulerName == "" || p.Spec.SchedulerName == s.opts.SchedulerName) &&
		p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func (s *Scheduler) podChanged(old, p *corev1.Pod) {
	if p.Spec.NodeName != "" {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			// Finished pods free their resources.
			s.cache.removePod(p.UID)
			s.flushUnschedulable()
			return
		}
		s.cache.place(p, p.Spec.NodeName, false)
		return
	}
	if !s.responsible(p) {
		return
	}
	key := podKey(p)
	if old != nil {
		s.mu.Lock()
		_, waiting := s.unschedulable[key]
		s.mu.Unlock()
		// Our own status write (or any status-only change) must not retry an
		// unschedulable pod: only a spec or label change can make it fit.
		if waiting && reflect.DeepEqual(old.Spec, p.Spec) && reflect.DeepEqual(old.Labels, p.Labels) {
			return
		}
	}
	s.queue.Add(key)
}

func (s *Scheduler) podDeleted(o any) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	placed := s.cache.isPlaced(p.UID)
	s.cache.removePod(p.UID)
	s.mu.Lock()
	delete(s.unschedulable, podKey(p))
	s.mu.Unlock()
	if placed {
		s.flushUnschedulable()
	}
}

func nodeSchedulingChanged(o, n *corev1.Node) bool {
	return o.Spec.Unschedulable != n.Spec.Unschedulable ||
		!reflect.DeepEqual(o.Labels, n.Labels) ||
		!reflect.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
		!reflect.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) ||
		readyOf(o) != readyOf(n)
}

func readyOf(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// flushUnschedulable requeues every waiting pod after a change that may let it fit.
func (s *Scheduler) flushUnschedulable() {
	s.mu.Lock()
	keys := make([]string, 0, len(s.unschedulable))
	for k := range s.unschedulable {
		keys = append(keys, k)
	}
	clear(s.unschedulable)
	s.mu.Unlock()
	for _, k := range keys {
		s.queue.AddRateLimited(k)
	}
}

// Run waits for the caches and schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.queue.ShutDown()
	if !toolscache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return fmt.Errorf("scheduler: caches did not sync: %w", ctx.Err())
	}
	s.log.Info("scheduler started", "name", s.opts.SchedulerName)
	go func() {
		t := time.NewTicker(s.opts.UnschedulableRetry)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.flushUnschedulable()
			}
		}
	}()
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for s.scheduleOne(ctx) {
	}
	s.bindWG.Wait()
	return nil
}

func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	ns, name, _ := toolscache.SplitMetaNamespaceKey(key)
	pod, err := s.podLister.Pods(ns).Get(name)
	if err != nil || !s.responsible(pod) || s.cache.isPlaced(pod.UID) {
		s.queue.Forget(key)
		return true
	}
	node, err := s.schedule(pod)
	if err != nil {
		s.mu.Lock()
		s.unschedulable[key] = struct{}{}
		s.mu.Unlock()
		s.async(ctx, func() { s.recordFailure(ctx, pod, err) })
		return true
	}
	s.cache.place(pod, node, true)
	s.async(ctx, func() { s.bind(ctx, pod, node) })
	return true
}

func (s *Scheduler) async(ctx context.Context, fn func()) {
	select {
	case s.bindSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	s.bindWG.Add(1)
	go func() {
		defer func() { <-s.bindSem; s.bindWG.Done() }()
		fn()
	}()
}

func (s *Scheduler) bind(ctx context.Context, pod *corev1.Pod, node string) {
	key := podKey(pod)
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	if err != nil {
		s.cache.forget(pod.UID)
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		s.log.Warn("bind failed", "pod", key, "node", node, "err", err)
		s.queue.AddRateLimited(key)
		return
	}
	s.scheduled.Add(1)
	s.queue.Forget(key)
	s.mu.Lock()
	delete(s.unschedulable, key)
	s.mu.Unlock()
}

// recordFailure sets PodScheduled=False/Unschedulable with the fit error
// message, unless the pod already says exactly that.
func (s *Scheduler) recordFailure(ctx context.Context, pod *corev1.Pod, schedErr error) {
	msg := schedErr.Error()
	var fe *FitError
	if !errors.As(schedErr, &fe) {
		msg = "scheduling failed: " + msg
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && c.Message == msg {
			return
		}
	}
	for attempt := 0; attempt < 3; attempt++ {
		p := pod.DeepCopy()
		setCondition(&p.Status, corev1.PodCondition{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: msg, LastTransitionTime: metav1.Now(),
		})
		_, err := s.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			if !apierrors.IsNotFound(err) && ctx.Err() == nil {
				s.log.Warn("update pod status", "pod", podKey(pod), "err", err)
			}
			return
		}
		if pod, err = s.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil || pod.Spec.NodeName != "" {
			return
		}
	}
	s.log.Info("pod unschedulable", "pod", podKey(pod), "reason", msg)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: pod.Namespace, Name: fmt.Sprintf("%s.%x", pod.Name, time.Now().UnixNano())},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Reason:         "FailedScheduling", Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: s.opts.SchedulerName},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
		ReportingController: s.opts.SchedulerName,
	}
	if _, err := s.client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		s.log.Debug("record FailedScheduling event", "pod", podKey(pod), "err", err)
	}
}

func setCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status == c.Status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
