package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
)

// Server is the cluster DNS server.
type Server struct {
	cfg       Config
	log       *slog.Logger
	idx       *index
	fwd       *forwarder
	m         *metrics
	limit     *limiter
	w         *watcher
	negSOA    *mdns.SOA // SOA for negative answers, TTL min(SOA TTL, minimum)
	podSuffix string    // ".pod.<zone>"
	ready     atomic.Bool

	mu    sync.Mutex
	addrs []string
	ran   bool
}

// New validates cfg and builds a Server; Run starts it.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register dns metrics: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		idx:       newIndex(cfg.Zone),
		m:         m,
		limit:     newLimiter(cfg.ClientQPS),
		podSuffix: ".pod." + cfg.Zone,
	}
	s.fwd = newForwarder(&s.cfg, m)
	serial := uint32(time.Now().Unix())
	soa := soaRecord(cfg.Zone, cfg.TTL, serial)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	s.negSOA = soa
	s.idx.setSource("static", staticRecords(cfg.Zone, cfg.TTL, serial))
	if s.w, err = newWatcher(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Ready reports whether the first sync with the API has completed; before
// that, cluster names get SERVFAIL.
func (s *Server) Ready() bool { return s.ready.Load() }

// Addrs returns the bound listen addresses (UDP and TCP share each port)
// once Run has bound them, else nil.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// Run binds the listeners, starts the informers and serves until ctx ends.
// Queries are answered from the start (SERVFAIL for the zone until synced).
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("dns: Run called twice: build a new Server")
	}
	s.ran = true
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var servers []*mdns.Server
	var addrs []string
	for _, l := range s.cfg.Listen {
		srvs, addr, err := s.listen(l)
		if err != nil {
			for _, srv := range servers {
				_ = srv.Shutdown()
			}
			return err
		}
		servers = append(servers, srvs...)
		addrs = append(addrs, addr)
	}

	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				errc <- fmt.Errorf("dns serve %s: %w", srvAddr(srv), err)
			}
		}()
	}
	s.mu.Lock()
	s.addrs = addrs
	s.mu.Unlock()
	s.log.Info("dns: listening", "addrs", addrs, "zone", s.cfg.Zone, "upstreams", s.cfg.Upstreams, "pods", s.cfg.Pods)

	go func() {
		if s.w.run(ctx) {
			s.ready.Store(true)
			s.log.Info("dns: synced with the API, answering the cluster zone")
		}
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(sctx)
	}
	wg.Wait()
	s.w.shutdown()
	return err
}

func srvAddr(srv *mdns.Server) string {
	if srv.PacketConn != nil {
		return "udp " + srv.PacketConn.LocalAddr().String()
	}
	return "tcp " + srv.Listener.Addr().String()
}

// udpSockets is how many SO_REUSEPORT UDP sockets share each listen
// address: one read loop per CPU keeps both cores busy under load.
var udpSockets = runtime.NumCPU()

// listen binds UDP and TCP on one address. With port 0 the UDP port is
// chosen first and TCP binds the same number (retried if TCP has it taken).
func (s *Server) listen(addr string) ([]*mdns.Server, string, error) {
	_, port, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		srvs, bound, err := s.listenOnce(addr)
		if err == nil || port != "0" || try == 4 {
			return srvs, bound, err
		}
	}
}

func (s *Server) listenOnce(addr string) ([]*mdns.Server, string, error) {
	host, port, _ := net.SplitHostPort(addr)
	lc := net.ListenConfig{Control: reusePort}
	var srvs []*mdns.Server
	closeAll := func() {
		for _, srv := range srvs {
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			}
			if srv.Listener != nil {
				srv.Listener.Close()
			}
		}
	}
	for i := 0; i < udpSockets; i++ {
		pc, err := lc.ListenPacket(context.Background(), "udp", net.JoinHostPort(host, port))
		if err != nil {
			closeAll()
			return nil, "", fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
		if port == "0" {
			port = strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		}
		srvs = append(srvs, &mdns.Server{PacketConn: pc, Handler: s, UDPSize: readUDPSize})
	}
	bound := net.JoinHostPort(host, port)
	ln, err := net.Listen("tcp", bound)
	if err != nil {
		closeAll()
		return nil, "", fmt.Errorf("dns listen tcp %s: %w", bound, err)
	}
	srvs = append(srvs, &mdns.Server{
		Listener:    newLimitListener(ln, s.cfg.MaxTCPConns),
		Handler:     s,
		ReadTimeout: 2 * time.Second,
		IdleTimeout: func() time.Duration { return 10 * time.Second },
	})
	return srvs, bound, nil
}

func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// limitListener blocks Accept while max connections are open, bounding the
// goroutines (one per connection in miekg/dns) a TCP flood can create.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, max int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, max)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
