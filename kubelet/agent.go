package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffnet/skiff/datapath"
	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/kubelet/podnet"
	"github.com/skiffnet/skiff/kubelet/runtime"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Agent is a running node agent.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	client   kubernetes.Interface
	creds    *Credentials
	rt       *runtime.Runtime
	net      *podnet.Manager
	hostNS   *netns.NS
	nodeIP   string
	recorder record.EventRecorder
	objects  objects
	pods     corelisters.PodLister
	services corelisters.ServiceLister

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	wg      sync.WaitGroup
	// admitted are the pods this agent let start (see admit); podsSynced tells when the pod
	// lister knows every pod of the node.
	admitted   map[types.UID]bool
	podsSynced func() bool

	listenAddr     net.Addr
	runtimeHealthy atomic.Bool
	ready          chan struct{}
	ctx            context.Context
	// startSem bounds concurrent container creates/starts: containerd and runc on a busy node
	// finish a few at a time sooner than all at once, so early pods get ready early.
	startSem chan struct{}
}

// Run runs the agent described by cfg until ctx ends. Stopping the agent leaves the pods'
// containers running; the next agent adopts them.
func Run(ctx context.Context, cfg Config) error {
	a, err := New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// New checks the config; Run does the work.
func New(cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), workers: map[types.UID]*podWorker{}, admitted: map[types.UID]bool{}, ready: make(chan struct{}), startSem: make(chan struct{}, 4)}, nil
}

// Ready is closed once the Node is registered and pods are being synced.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// ListenAddr is the agent API's address once Ready.
func (a *Agent) ListenAddr() net.Addr { return a.listenAddr }

// Run registers the node and syncs pods until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	cfg := &a.cfg
	a.ctx = ctx
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if cfg.NetNS != "" {
		ns, err := netns.Open(cfg.NetNS)
		if err != nil {
			return fmt.Errorf("--netns %s: %w (create it first)", cfg.NetNS, err)
		}
		defer ns.Close()
		a.hostNS = ns
	}
	a.nodeIP = cfg.NodeIP
	if a.nodeIP == "" {
		ip, err := a.detectNodeIP()
		if err != nil {
			return err
		}
		a.nodeIP = ip
	}
	a.client = cfg.Client
	if a.client != nil {
		// A given client (tests) skips the join; saved credentials still serve the agent API.
		if b, err := os.ReadFile(credentialsPath(cfg.DataDir)); err == nil {
			var c Credentials
			if json.Unmarshal(b, &c) == nil {
				a.creds = &c
			}
		}
	} else {
		creds, err := loadOrJoin(ctx, cfg.Server, cfg.Token, cfg.NodeName, []string{a.nodeIP}, cfg.DataDir)
		if err != nil {
			return err
		}
		a.creds = creds
		cs, err := kubernetes.NewForConfig(creds.restConfig(cfg.Server))
		if err != nil {
			return fmt.Errorf("API client: %w", err)
		}
		a.client = cs
	}
	rt, err := runtime.New(ctx, cfg.ContainerdSocket, "skiff-"+cfg.NodeName)
	if err != nil {
		return err
	}
	defer rt.Close()
	a.rt = rt
	a.runtimeHealthy.Store(true)
	pn, err := podnet.New(podnet.Config{StateDir: cfg.DataDir + "/podnet", HostNS: a.hostNS, MTU: cfg.MTU})
	if err != nil {
		return err
	}
	a.net = pn
	a.objects = apiObjects{a.client}

	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	defer bc.Shutdown()
	a.recorder = bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: cfg.NodeName})

	if cfg.Datapath == nil && cfg.DatapathConfig != nil {
		dp, err := a.startDatapath(ctx)
		if err != nil {
			return err
		}
		defer dp.Close()
	}

	srv, err := a.startServer(ctx)
	if err != nil {
		return err
	}
	if srv != nil {
		defer srv.Close()
	}
	if err := a.registerNode(ctx); err != nil {
		return err
	}

	podFactory := informers.NewSharedInformerFactoryWithOptions(a.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	}))
	factory := informers.NewSharedInformerFactory(a.client, 0)
	podInf := podFactory.Core().V1().Pods()
	a.pods = podInf.Lister()
	a.podsSynced = podInf.Informer().HasSynced
	svcInf := factory.Core().V1().Services()
	a.services = svcInf.Lister()
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(a.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.NodeName).String()
	}))
	nodeInf := nodeFactory.Core().V1().Nodes()
	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { a.onNode(o) },
		UpdateFunc: func(_, o any) { a.onNode(o) },
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { a.onPod(o, false) },
		UpdateFunc: func(_, o any) { a.onPod(o, false) },
		DeleteFunc: func(o any) { a.onPod(o, true) },
	})
	factory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	// Services first: a pod's env needs the services that exist when it starts.
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, nodeInf.Informer().HasSynced) {
		return ctx.Err()
	}
	podFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced) {
		return ctx.Err()
	}
	if cfg.Overlay {
		a.startOverlay(ctx)
	}
	if cfg.DNS {
		if err := a.startDNS(ctx); err != nil {
			return err
		}
	}
	go a.nodeLoop(ctx)
	go a.leaseLoop(ctx)
	go a.gcLoop(ctx)
	go a.runtimeWatch(ctx)
	close(a.ready)
	a.log.Info("agent running", "nodeIP", a.nodeIP, "listen", a.listenAddr, "containerd", cfg.ContainerdSocket)
	<-ctx.Done()
	podFactory.Shutdown()
	factory.Shutdown()
	nodeFactory.Shutdown()
	a.wg.Wait()
	return nil
}

// onPod hands a pod event to the pod's worker, starting one for a new pod.
func (a *Agent) onPod(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != a.cfg.NodeName {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.workers[pod.UID]
	if w == nil {
		if deleted {
			// Deleted before we saw it: its containers, if any, go with the GC.
			return
		}
		a.trace(pod.UID, stepSeen)
		w = newPodWorker(a, pod)
		a.workers[pod.UID] = w
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			w.run()
			a.mu.Lock()
			if a.workers[pod.UID] == w {
				delete(a.workers, pod.UID)
				delete(a.admitted, pod.UID)
			}
			a.mu.Unlock()
		}()
		return
	}
	w.update(pod, deleted)
}

// detectNodeIP picks the first global IPv4 address of the node's namespace.
func (a *Agent) detectNodeIP() (string, error) {
	var h *netlink.Handle
	var err error
	if a.hostNS != nil {
		h, err = a.hostNS.Netlink()
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return "", err
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range addrs {
		if ad.Scope == int(netlink.SCOPE_UNIVERSE) && !ad.IP.IsLoopback() {
			if l, err := h.LinkByIndex(ad.LinkIndex); err == nil && len(l.Attrs().Name) > 2 && l.Attrs().Name[:2] == "sk" {
				continue // a pod veth's gateway address
			}
			return ad.IP.String(), nil
		}
	}
	return "", errors.New("no IPv4 address found for the node: set --node-ip")
}

// startDatapath loads the eBPF datapath in the node's netns and follows Services and
// EndpointSlices into its maps.
func (a *Agent) startDatapath(ctx context.Context) (*datapath.Datapath, error) {
	dc := *a.cfg.DatapathConfig
	if dc.NodeName == "" {
		dc.NodeName = a.cfg.NodeName
	}
	if len(dc.NodeIPs) == 0 {
		dc.NodeIPs = []net.IP{net.ParseIP(a.nodeIP)}
	}
	var dp *datapath.Datapath
	if err := a.inNodeNS(func() error {
		var err error
		if len(dc.Devices) == 1 && dc.Devices[0] == datapath.DevicesAuto {
			dev, err := datapath.DefaultRouteDevice()
			if err != nil {
				return err
			}
			dc.Devices = []string{dev}
		}
		dp, err = datapath.New(dc)
		return err
	}); err != nil {
		return nil, fmt.Errorf("datapath: %w (run without --datapath to go on without service load balancing)", err)
	}
	a.cfg.Datapath = dp
	go func() {
		if err := datapath.RunReconciler(ctx, a.client, dp); err != nil && ctx.Err() == nil {
			a.log.Error("datapath reconciler stopped", "err", err)
		}
	}()
	return dp, nil
}

// stopCtx ends when the agent stops.
func (a *Agent) stopCtx() context.Context { return a.ctx }

// inNodeNS runs fn in the node's network namespace.
func (a *Agent) inNodeNS(fn func() error) error {
	if a.hostNS == nil {
		return fn()
	}
	return a.hostNS.Do(fn)
}

// dial opens a connection from the node's network namespace (probes).
func (a *Agent) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := a.inNodeNS(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

func (a *Agent) notFound(err error) bool { return apierrors.IsNotFound(err) }

// apiObjects reads ConfigMaps and Secrets from the API.
type apiObjects struct{ c kubernetes.Interface }

func (o apiObjects) ConfigMap(ns, name string) (*corev1.ConfigMap, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o.c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

func (o apiObjects) Secret(ns, name string) (*corev1.Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o.c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

// runtimeWatch notices containerd going away and coming back: pods keep running in their
// shims meanwhile, and the workers resync once it answers again.
func (a *Agent) runtimeWatch(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.rt.Healthy(ctx)
		was := a.runtimeHealthy.Load()
		switch {
		case err != nil && was:
			a.log.Warn("containerd is not answering; pods keep running, retrying", "err", err)
			a.runtimeHealthy.Store(false)
		case err == nil && !was:
			a.log.Info("containerd is back")
			a.runtimeHealthy.Store(true)
			a.mu.Lock()
			for _, w := range a.workers {
				w.kick()
			}
			a.mu.Unlock()
		}
	}
}
