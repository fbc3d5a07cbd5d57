package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
)

// EtcdConfig says where the cluster state lives. With no Endpoints, an embedded etcd keeps it
// under DataDir/etcd; otherwise the client talks to the external cluster at Endpoints, with
// client TLS when CertFile/KeyFile/CAFile are given.
type EtcdConfig struct {
	DataDir   string
	Endpoints []string // e.g. https://10.0.0.1:2379; empty = embedded
	CertFile  string   // client certificate (with KeyFile) for external etcd
	KeyFile   string
	CAFile    string // CA that signed the etcd servers' certificates
}

// Etcd is a connected etcd: Client always, plus the embedded server when there is one.
type Etcd struct {
	Client *clientv3.Client
	server *embed.Etcd // nil for an external cluster
	// clientURL is the embedded etcd's loopback client URL ("" for an external cluster).
	clientURL string

	stopCompactor context.CancelFunc // external etcd only
	compactorDone chan struct{}
}

// ClientURL is the loopback URL of the embedded etcd, for tools and for tests that point a
// second API server at it; "" for an external cluster.
func (e *Etcd) ClientURL() string { return e.clientURL }

// Embedded reports whether this process runs the etcd server itself.
func (e *Etcd) Embedded() bool { return e.server != nil }

// Close closes the client first (so its watches end cleanly) and then the embedded server.
func (e *Etcd) Close() {
	if e.stopCompactor != nil {
		e.stopCompactor()
		<-e.compactorDone
	}
	if e.Client != nil {
		inProcessWatchers.Delete(e.Client)
		if err := e.Client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			slog.Warn("close etcd client", "err", err)
		}
	}
	if e.server != nil {
		e.server.Close()
	}
}

// inProcessWatchers makes watchers for in-process clients (*clientv3.Client -> func() clientv3.Watcher):
// clientv3.NewWatcher needs a gRPC connection, which they do not have.
var inProcessWatchers sync.Map

// blankCtxWatcher hides the caller's context values from the in-process watch stream's
// String(), as v3client's own watcher does (they race with x/net/trace otherwise).
type blankCtxWatcher struct{ clientv3.Watcher }

type blankContext struct{ context.Context }

func (blankContext) String() string { return "(blankCtx)" }

func (w blankCtxWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	return w.Watcher.Watch(blankContext{ctx}, key, opts...)
}

// newWatcher gives a watch stream of its own on client.
func newWatcher(client *clientv3.Client) clientv3.Watcher {
	if f, ok := inProcessWatchers.Load(client); ok {
		return f.(func() clientv3.Watcher)()
	}
	return clientv3.NewWatcher(client)
}

// OpenEtcd starts the embedded etcd or connects to the external one, and returns once etcd
// answers requests (or ctx ends).
func OpenEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" {
			return nil, fmt.Errorf("etcd TLS files are only used with external etcd endpoints: set Endpoints (--etcd-endpoints) or drop the TLS files")
		}
		return openEmbedded(ctx, cfg.DataDir)
	}
	return openExternal(ctx, cfg)
}

func openEmbedded(ctx context.Context, dataDir string) (*Etcd, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("embedded etcd needs EtcdConfig.DataDir (the server's --data-dir)")
	}
	dir := filepath.Join(dataDir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = "skiff"
	ec.Dir = dir
	lg := quietLogger()
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	// Port 0: the kernel picks free loopback ports, so several servers (and tests) can run at
	// once. The peer URL is never dialled in a single-member cluster; it only has to be stable
	// across restarts because etcd derives the member ID from it.
	loop, _ := url.Parse("http://127.0.0.1:0")
	ec.ListenClientUrls = []url.URL{*loop}
	ec.AdvertiseClientUrls = []url.URL{*loop}
	ec.ListenPeerUrls = []url.URL{*loop}
	ec.AdvertisePeerUrls = []url.URL{*loop}
	ec.InitialCluster = ec.Name + "=" + loop.String()
	// A single member: short ticks make the first election take ~50 ms instead of ~1 s.
	ec.TickMs = 10
	ec.ElectionMs = 50
	// Kubernetes' API server compacts every 5 minutes; the embedded etcd does it itself.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "5m"

	srv, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		srv.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dir, err)
	case <-ctx.Done():
		srv.Close()
		return nil, fmt.Errorf("wait for embedded etcd in %s: %w", dir, ctx.Err())
	case <-time.After(60 * time.Second):
		srv.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready in 60s", dir)
	}
	// The API server talks to its own etcd by direct function calls instead of gRPC over
	// loopback TCP: that saves protobuf encoding, two HTTP/2 stacks and the syscalls of every
	// request, about a fifth of the CPU of a create. The client listener stays up for tools
	// and for other API servers that share this etcd (ClientURL).
	cli := v3client.New(srv.Server)
	inProcessWatchers.Store(cli, func() clientv3.Watcher {
		return blankCtxWatcher{clientv3.NewWatchFromWatchClient(adapter.WatchServerToWatchClient(v3rpc.NewWatchServer(srv.Server)), cli)}
	})
	return &Etcd{Client: cli, server: srv, clientURL: "http://" + srv.Clients[0].Addr().String()}, nil
}

func openExternal(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, fmt.Errorf("etcd client TLS needs both CertFile and KeyFile (--etcd-certfile and --etcd-keyfile), got cert %q key %q", cfg.CertFile, cfg.KeyFile)
	}
	useTLS := cfg.CertFile != "" || cfg.CAFile != ""
	for _, ep := range cfg.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("etcd endpoint %q is not a URL like https://10.0.0.1:2379 (--etcd-endpoints)", ep)
		}
		if useTLS && u.Scheme == "http" {
			return nil, fmt.Errorf("etcd endpoint %q is http:// but TLS files are set: use https://", ep)
		}
	}
	lg := quietLogger()
	cc := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      lg,
		Context:     context.Background(),
		// Keepalives notice a dead member so the client moves to another one.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	}
	if useTLS {
		info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd client TLS (cert %q, key %q, ca %q): %w", cfg.CertFile, cfg.KeyFile, cfg.CAFile, err)
		}
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	// clientv3.New does not wait for a connection: one read proves the cluster answers.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cli.Get(cctx, "/registry/health", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %s does not answer (check --etcd-endpoints and TLS files): %w", strings.Join(cfg.Endpoints, ","), err)
	}
	// The embedded etcd compacts itself; an external one is compacted by its API servers,
	// as Kubernetes does.
	cctx, stop := context.WithCancel(context.Background())
	e := &Etcd{Client: cli, stopCompactor: stop, compactorDone: make(chan struct{})}
	go func() {
		defer close(e.compactorDone)
		runCompactor(cctx, cli, CompactInterval)
	}()
	return e, nil
}
