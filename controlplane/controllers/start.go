// Package controllers runs skiff's controller manager: ReplicaSet and
// ReplicationController, Deployment, EndpointSlice (+ legacy Endpoints),
// node lifecycle, node IPAM, namespace and garbage collector, plus the
// scheduler, all under one leader-election Lease so several `skiff server`
// replicas never act twice. Every controller is a goroutine with its own
// work queue and talks to the state only through the API.
package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/skiffnet/skiff/controlplane/scheduler"
)

// Options configure the controller manager; zero values take the defaults.
type Options struct {
	// Identity in the leader Lease (default hostname_uuid).
	Identity string
	// LeaseNamespace/LeaseName of the leader-election Lease
	// (default kube-system/skiff-controller-manager).
	LeaseNamespace, LeaseName string
	// LeaseDuration, RenewDeadline, RetryPeriod: default 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	// NodeMonitorGracePeriod: a node silent this long is Ready=Unknown (default 40s).
	NodeMonitorGracePeriod time.Duration
	// PodEvictionTimeout: pods leave an unreachable/not-ready node this
	// long after the taint (default 60s), unless they tolerate it.
	PodEvictionTimeout time.Duration

	// ClusterCIDR and NodeCIDRMaskSize for node IPAM (default 10.244.0.0/16, 24).
	ClusterCIDR      string
	NodeCIDRMaskSize int
	DisableNodeIPAM  bool

	// Workers per controller queue (default 5).
	Workers int
	// MaxEndpointsPerSlice (default 100).
	MaxEndpointsPerSlice int

	DisableScheduler bool
	Scheduler        scheduler.Options

	// QPS/Burst of the controllers' API client (default 500/1000; the
	// scheduler has its own client at twice that).
	QPS   float32
	Burst int

	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Identity == "" {
		h, _ := os.Hostname()
		o.Identity = h + "_" + string(uuid.NewUUID())
	}
	if o.LeaseNamespace == "" {
		o.LeaseNamespace = metav1.NamespaceSystem
	}
	if o.LeaseName == "" {
		o.LeaseName = "skiff-controller-manager"
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.LeaseDuration <= o.RenewDeadline || o.RenewDeadline <= o.RetryPeriod {
		return fmt.Errorf("leader election: need LeaseDuration (%v) > RenewDeadline (%v) > RetryPeriod (%v)", o.LeaseDuration, o.RenewDeadline, o.RetryPeriod)
	}
	if o.NodeMonitorGracePeriod == 0 {
		o.NodeMonitorGracePeriod = 40 * time.Second
	}
	if o.PodEvictionTimeout == 0 {
		o.PodEvictionTimeout = 60 * time.Second
	}
	if o.NodeMonitorGracePeriod < 0 || o.PodEvictionTimeout < 0 {
		return fmt.Errorf("--node-monitor-grace-period (%v) and --pod-eviction-timeout (%v) must not be negative", o.NodeMonitorGracePeriod, o.PodEvictionTimeout)
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = "10.244.0.0/16"
	}
	if o.NodeCIDRMaskSize == 0 {
		o.NodeCIDRMaskSize = 24
	}
	if _, err := parseClusterCIDR(o.ClusterCIDR, o.NodeCIDRMaskSize); err != nil {
		return err
	}
	if o.Workers <= 0 {
		o.Workers = 5
	}
	if o.QPS == 0 {
		o.QPS = 500
	}
	if o.Burst == 0 {
		o.Burst = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Scheduler.Logger == nil {
		o.Scheduler.Logger = o.Logger
	}
	return nil
}

// Start validates opts, then runs the controller manager in the background
// until ctx ends. It fits server.PostStartHook, so `skiff server` wires it as
//
//	srv.AddPostStartHook("controllers", func(ctx context.Context, admin *rest.Config) error {
//		return controllers.Start(ctx, admin, controllers.Options{ClusterCIDR: cfg.ClusterCIDR,
//			NodeMonitorGracePeriod: grace, PodEvictionTimeout: eviction})
//	})
func Start(ctx context.Context, cfg *rest.Config, opts Options) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	m, err := newManager(cfg, opts)
	if err != nil {
		return err
	}
	go m.run(ctx)
	return nil
}

// Run is Start that blocks until ctx ends and every controller has stopped.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	m, err := newManager(cfg, opts)
	if err != nil {
		return err
	}
	m.run(ctx)
	return nil
}

type manager struct {
	opts      Options
	log       *slog.Logger
	client    kubernetes.Interface
	schedCl   kubernetes.Interface
	dyn       dynamic.Interface
	mapper    meta.RESTMapper
	lock      *gatedLock
	leading   chan struct{} // closed on the first acquisition (tests)
	leadOnce  sync.Once
	termsDone sync.WaitGroup
}

func newManager(cfg *rest.Config, opts Options) (*manager, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = opts.QPS, opts.Burst
	c.UserAgent = "skiff-controller-manager"
	// JSON explicitly: client-go otherwise prefers protobuf for built-in
	// types, and JSON is what every skiff API server speaks.
	c.ContentType = "application/json"
	c.AcceptContentTypes = "application/json"
	client, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("controller manager client: %w", err)
	}
	sc := rest.CopyConfig(c)
	sc.QPS, sc.Burst = 2*opts.QPS, 2*opts.Burst
	sc.UserAgent = "skiff-scheduler"
	schedCl, err := kubernetes.NewForConfig(sc)
	if err != nil {
		return nil, fmt.Errorf("scheduler client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	return newManagerWithClients(client, schedCl, dyn, mapper, opts), nil
}

func newManagerWithClients(client, schedCl kubernetes.Interface, dyn dynamic.Interface, mapper meta.RESTMapper, opts Options) *manager {
	m := &manager{opts: opts, log: opts.Logger.With("component", "controller-manager", "identity", opts.Identity),
		client: client, schedCl: schedCl, dyn: dyn, mapper: mapper, leading: make(chan struct{})}
	m.lock = &gatedLock{Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: opts.LeaseNamespace, Name: opts.LeaseName},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
	}}
	return m
}

// gatedLock delays giving the Lease up (an update with an empty holder)
// until this term's controllers have all stopped, so the next leader never
// overlaps with us.
type gatedLock struct {
	resourcelock.Interface
	mu      sync.Mutex
	stopped chan struct{}
	// acquired: a write naming us as holder succeeded in this term, so
	// OnStartedLeading runs (or will) and closes stopped.
	acquired bool
}

func (g *gatedLock) noteWrite(ler resourcelock.LeaderElectionRecord, err error) error {
	if err == nil && ler.HolderIdentity == g.Identity() {
		g.mu.Lock()
		g.acquired = true
		g.mu.Unlock()
	}
	return err
}

func (g *gatedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return g.noteWrite(ler, g.Interface.Create(ctx, ler))
}

func (g *gatedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if ler.HolderIdentity == "" {
		g.mu.Lock()
		ch := g.stopped
		g.mu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return g.noteWrite(ler, g.Interface.Update(ctx, ler))
}

func (m *manager) run(ctx context.Context) {
	for ctx.Err() == nil {
		stopped := make(chan struct{})
		m.lock.mu.Lock()
		m.lock.stopped = stopped
		m.lock.acquired = false
		m.lock.mu.Unlock()
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          m.lock,
			LeaseDuration: m.opts.LeaseDuration, RenewDeadline: m.opts.RenewDeadline, RetryPeriod: m.opts.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            m.opts.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					defer close(stopped)
					m.log.Info("became leader, starting controllers")
					m.leadOnce.Do(func() { close(m.leading) })
					m.runControllers(lctx)
					m.log.Info("controllers stopped")
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			m.log.Error("leader election config", "err", err)
			return
		}
		le.Run(ctx)
		m.lock.mu.Lock()
		acquired := m.lock.acquired
		m.lock.mu.Unlock()
		if acquired {
			<-stopped
		}
		if ctx.Err() == nil {
			m.log.Warn("lost leadership, contending again")
		}
	}
}

// runControllers runs every controller until ctx ends, on fresh informers.
func (m *manager) runControllers(ctx context.Context) {
	o := m.opts
	f := informers.NewSharedInformerFactory(m.client, 0)
	rs := newReplicaSetController(m.client, f, m.log)
	rc := newReplicationControllerController(m.client, f, m.log)
	dep := newDeploymentController(m.client, f, m.log)
	eps := newEndpointSliceController(m.client, f, o.MaxEndpointsPerSlice, m.log)
	nlc := newNodeLifecycleController(m.client, f, o.NodeMonitorGracePeriod, o.PodEvictionTimeout, m.log)
	nsc := newNamespaceController(m.client, m.dyn, f, m.log)
	gc := newGarbageCollector(m.dyn, m.mapper, f, m.log)
	var ipam *nodeIPAMController
	if !o.DisableNodeIPAM {
		cidr, _ := parseClusterCIDR(o.ClusterCIDR, o.NodeCIDRMaskSize)
		ipam = newNodeIPAMController(m.client, f, cidr, o.NodeCIDRMaskSize, m.log)
	}
	var sched *scheduler.Scheduler
	var sf informers.SharedInformerFactory
	if !o.DisableScheduler {
		// The scheduler gets its own informers on its own client so its
		// binding rate is not throttled by the controllers' writes.
		sf = informers.NewSharedInformerFactory(m.schedCl, 0)
		sched = scheduler.New(m.schedCl, sf, o.Scheduler)
	}
	f.Start(ctx.Done())
	if sf != nil {
		sf.Start(ctx.Done())
	}
	var wg sync.WaitGroup
	goRun := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	goRun(func() { rs.run(ctx, o.Workers) })
	goRun(func() { rc.run(ctx, o.Workers) })
	goRun(func() { dep.run(ctx, o.Workers) })
	goRun(func() { eps.run(ctx, o.Workers) })
	goRun(func() { nlc.run(ctx) })
	goRun(func() { nsc.run(ctx, 2) })
	goRun(func() { gc.run(ctx, o.Workers) })
	if ipam != nil {
		goRun(func() { ipam.run(ctx) })
	}
	if sched != nil {
		goRun(func() {
			if err := sched.Run(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("scheduler stopped", "err", err)
			}
		})
	}
	wg.Wait()
	f.Shutdown()
	if sf != nil {
		sf.Shutdown()
	}
}
