// Package server runs skiff's control plane: etcd (embedded or external), the registry and
// the API server, and the objects every cluster starts with.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/apiserver"
	"github.com/skiffnet/skiff/controlplane/pki"
	"github.com/skiffnet/skiff/controlplane/registry"
	"github.com/skiffnet/skiff/controlplane/storage"
)

// Defaults.
const (
	DefaultDataDir       = "/var/lib/skiff/server"
	DefaultListen        = "0.0.0.0:6443"
	DefaultServiceCIDR   = "10.96.0.0/12"
	DefaultClusterCIDR   = "10.244.0.0/16"
	DefaultNodePortRange = "30000-32767"
)

// Config configures the control plane. Empty fields take the defaults above.
type Config struct {
	DataDir          string
	Listen           string // HOST:PORT of the HTTPS API ("127.0.0.1:0" picks a free port)
	AdvertiseAddress string // IP other nodes and the kubernetes Service reach the API at
	EtcdEndpoints    []string
	EtcdCAFile       string
	EtcdCertFile     string
	EtcdKeyFile      string
	ServiceCIDR      string
	ClusterCIDR      string
	NodePortRange    string
	InsecureListen   string // loopback HOST:PORT served without authentication as admin
}

// PostStartHook runs after the API serves, with an admin client config (controllers hook
// in here). Its error is logged; ctx ends at shutdown.
type PostStartHook func(ctx context.Context, admin *rest.Config) error

// Server is a configured control plane; Run starts it.
type Server struct {
	cfg         Config
	serviceCIDR netip.Prefix
	listener    net.Listener
	insecure    net.Listener
	advertise   net.IP
	bundle      *pki.Bundle
	ready       chan struct{}

	mu      sync.Mutex
	hooks   map[string]PostStartHook
	ran     bool
	etcd    *clientv3.Client
	etcdURL string

	endpoints *endpointReconciler // of the kubernetes Service, while Run runs
}

// EtcdClient is the etcd client while the server runs (nil before). It is for tests and
// tools (compaction, inspection): components reach cluster state only through the API.
func (s *Server) EtcdClient() *clientv3.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcd
}

// EtcdURL is the client URL of the etcd this server uses while it runs: the embedded one's
// loopback URL, or the first external endpoint. Tests point a second server at it.
func (s *Server) EtcdURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcdURL
}

// New checks the configuration, binds the listeners and prepares the data dir (CA, serving
// certificate, tokens, kubeconfig). Nothing is served until Run.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = DefaultServiceCIDR
	}
	if cfg.ClusterCIDR == "" {
		cfg.ClusterCIDR = DefaultClusterCIDR
	}
	if cfg.NodePortRange == "" {
		cfg.NodePortRange = DefaultNodePortRange
	}
	svcCIDR, err := netip.ParsePrefix(cfg.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("--service-cidr %q: %w (want a CIDR like 10.96.0.0/12)", cfg.ServiceCIDR, err)
	}
	if _, err := netip.ParsePrefix(cfg.ClusterCIDR); err != nil {
		return nil, fmt.Errorf("--cluster-cidr %q: %w (want a CIDR like 10.244.0.0/16)", cfg.ClusterCIDR, err)
	}
	if _, _, err := registry.ParsePortRange(cfg.NodePortRange); err != nil {
		return nil, fmt.Errorf("--service-node-port-range: %w", err)
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w (want HOST:PORT like 0.0.0.0:6443)", cfg.Listen, err)
	}
	var insecureHost string
	if cfg.InsecureListen != "" {
		h, _, err := net.SplitHostPort(cfg.InsecureListen)
		if err != nil {
			return nil, fmt.Errorf("--insecure-listen %q: %w (want 127.0.0.1:PORT)", cfg.InsecureListen, err)
		}
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("--insecure-listen %q: the unauthenticated port may only listen on loopback (127.0.0.1:PORT)", cfg.InsecureListen)
		}
		insecureHost = h
	}
	s := &Server{cfg: cfg, serviceCIDR: svcCIDR.Masked(), ready: make(chan struct{}), hooks: map[string]PostStartHook{}}
	if cfg.AdvertiseAddress != "" {
		s.advertise = net.ParseIP(cfg.AdvertiseAddress)
		if s.advertise == nil {
			return nil, fmt.Errorf("--advertise-address %q is not an IP address", cfg.AdvertiseAddress)
		}
	} else {
		s.advertise = detectAdvertise(host)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	hostname, _ := os.Hostname()
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, s.advertise}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		ips = append(ips, ip)
	}
	alloc, _ := registry.NewAllocator(nil, s.serviceCIDR, cfg.NodePortRange)
	if alloc != nil {
		ips = append(ips, alloc.IPAt(1).AsSlice())
	}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if hostname != "" {
		dns = append(dns, hostname)
	}
	if s.bundle, err = pki.Load(cfg.DataDir, ips, dns); err != nil {
		return nil, err
	}
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if insecureHost != "" {
		if s.insecure, err = net.Listen("tcp", cfg.InsecureListen); err != nil {
			s.listener.Close()
			return nil, fmt.Errorf("listen on %s: %w", cfg.InsecureListen, err)
		}
	}
	if err := pki.WriteKubeconfig(s.KubeconfigPath(), s.URL(), s.bundle.CA.CertPEM, s.bundle.AdminToken); err != nil {
		s.closeListeners()
		return nil, err
	}
	return s, nil
}

// detectAdvertise picks the listen IP when it is specific, else the address of the default
// route's interface (a UDP "connect" sends nothing), else loopback.
func detectAdvertise(listenHost string) net.IP {
	if ip := net.ParseIP(listenHost); ip != nil && !ip.IsUnspecified() {
		return ip
	}
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
			return a.IP
		}
	}
	return net.ParseIP("127.0.0.1")
}

func (s *Server) closeListeners() {
	s.listener.Close()
	if s.insecure != nil {
		s.insecure.Close()
	}
}

// Port is the HTTPS port actually bound.
func (s *Server) Port() int { return s.listener.Addr().(*net.TCPAddr).Port }

// URL is the HTTPS URL a client on this machine uses.
func (s *Server) URL() string {
	host, _, _ := net.SplitHostPort(s.cfg.Listen)
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(s.Port()))
}

// InsecureURL is the plain-HTTP admin URL of --insecure-listen, "" when off.
func (s *Server) InsecureURL() string {
	if s.insecure == nil {
		return ""
	}
	return "http://" + s.insecure.Addr().String()
}

// KubeconfigPath is the admin kubeconfig in the data dir.
func (s *Server) KubeconfigPath() string { return filepath.Join(s.cfg.DataDir, pki.KubeconfigFile) }

// JoinToken is the token agents join with.
func (s *Server) JoinToken() string { return s.bundle.JoinToken }

// CACertPEM is the cluster CA certificate.
func (s *Server) CACertPEM() []byte { return s.bundle.CA.CertPEM }

// DataDir is where the server keeps its state.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// AdminConfig is a client config for this server as the admin, over loopback when the server
// listens there.
func (s *Server) AdminConfig() *rest.Config {
	return &rest.Config{
		Host:            s.URL(),
		BearerToken:     s.bundle.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.bundle.CA.CertPEM},
		QPS:             1000,
		Burst:           2000,
	}
}

// Ready is closed once the API serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// AddPostStartHook registers fn to run once the API serves. Call it before Run.
func (s *Server) AddPostStartHook(name string, fn PostStartHook) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ran {
		return fmt.Errorf("post-start hook %q added after Run", name)
	}
	if _, dup := s.hooks[name]; dup {
		return fmt.Errorf("post-start hook %q added twice", name)
	}
	s.hooks[name] = fn
	return nil
}

// Run serves until ctx ends, then stops the HTTP servers, closes the etcd client and stops
// the embedded etcd.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("server: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()
	defer s.closeListeners()

	etcd, err := storage.OpenEtcd(ctx, storage.EtcdConfig{DataDir: s.cfg.DataDir, Endpoints: s.cfg.EtcdEndpoints,
		CertFile: s.cfg.EtcdCertFile, KeyFile: s.cfg.EtcdKeyFile, CAFile: s.cfg.EtcdCAFile})
	if err != nil {
		return fmt.Errorf("open etcd: %w", err)
	}
	defer etcd.Close()
	s.mu.Lock()
	s.etcd = etcd.Client
	s.etcdURL = etcd.ClientURL()
	if s.etcdURL == "" && len(s.cfg.EtcdEndpoints) > 0 {
		s.etcdURL = s.cfg.EtcdEndpoints[0]
	}
	s.mu.Unlock()
	store := storage.New(etcd.Client, storage.DefaultCodec())

	alloc, err := registry.NewAllocator(store, s.serviceCIDR, s.cfg.NodePortRange)
	if err != nil {
		return err
	}
	if err := alloc.Init(ctx); err != nil {
		return err
	}
	svcs := &corev1.ServiceList{}
	if err := store.List(ctx, "/registry/services/", storage.ListOptions{}, svcs); err != nil {
		return fmt.Errorf("list services for allocation repair: %w", err)
	}
	if err := alloc.Repair(ctx, svcs.Items); err != nil {
		return err
	}
	tokens, err := apiserver.NewNodeTokens(ctx, store)
	if err != nil {
		return err
	}
	var started bool
	var startedMu sync.Mutex
	api := apiserver.New(apiserver.Options{Storage: store, Allocator: alloc, NodeTokens: tokens, CA: s.bundle.CA,
		AdminToken: s.bundle.AdminToken, JoinToken: s.bundle.JoinToken,
		Ready: func() bool { startedMu.Lock(); defer startedMu.Unlock(); return started }})
	// The caches stop before the etcd client closes (defers run last-in first-out).
	cacheCtx, stopCaches := context.WithCancel(ctx)
	defer stopCaches()
	api.Start(cacheCtx)
	s.endpoints = newEndpointReconciler(api, s.advertise, int32(s.Port()))
	if err := s.bootstrap(ctx, api, alloc); err != nil {
		return err
	}
	// Renews this server's place in the kubernetes endpoints; at shutdown it takes it out
	// before the API stops serving, and before the etcd client closes.
	epCtx, stopEndpoints := context.WithCancel(context.Background())
	epDone := make(chan struct{})
	go func() { defer close(epDone); s.endpoints.run(epCtx) }()
	leaveEndpoints := sync.OnceFunc(func() { stopEndpoints(); <-epDone })
	defer leaveEndpoints()

	// Request contexts derive from base, so cancelling it ends open watches at shutdown.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	errLog := slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{s.bundle.ServingCert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	srv := &http.Server{Handler: api, TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog,
		BaseContext: func(net.Listener) context.Context { return base }}
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(s.listener, "", "") }()
	var insecureSrv *http.Server
	if s.insecure != nil {
		insecureSrv = &http.Server{Handler: api.InsecureHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog,
			BaseContext: func(net.Listener) context.Context { return base }}
		go func() { errc <- insecureSrv.Serve(s.insecure) }()
		slog.Warn("serving the API without authentication (admin) on loopback", "addr", s.insecure.Addr().String())
	}
	startedMu.Lock()
	started = true
	startedMu.Unlock()
	close(s.ready)
	slog.Info("API server ready", "url", s.URL(), "advertise", s.advertise.String(), "kubeconfig", s.KubeconfigPath(), "etcd_embedded", etcd.Embedded())

	hookCtx, cancelHooks := context.WithCancel(ctx)
	defer cancelHooks()
	var hooks sync.WaitGroup
	s.mu.Lock()
	for name, fn := range s.hooks {
		hooks.Add(1)
		go func() {
			defer hooks.Done()
			if err := fn(hookCtx, s.AdminConfig()); err != nil && hookCtx.Err() == nil {
				slog.Error("post-start hook failed", "hook", name, "err", err)
			}
		}()
	}
	s.mu.Unlock()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("serve API: %w", err)
		}
	}
	slog.Info("API server shutting down")
	cancelHooks()
	hooks.Wait()
	leaveEndpoints()
	cancelBase()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if insecureSrv != nil {
		if err := insecureSrv.Shutdown(sctx); err != nil {
			insecureSrv.Close()
		}
	}
	return runErr
}
