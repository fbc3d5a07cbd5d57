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
	// waiting holds a token per UDP query handed to a goroutine to wait on
	// an upstream (MaxForwards); beyond it such queries get SERVFAIL.
	waiting chan struct{}
	// miekgUDP serves UDP with miekg/dns's server instead of the read
	// loops: the benchmark's "before" for comparison in one run.
	miekgUDP bool

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
		waiting:   make(chan struct{}, cfg.MaxForwards),
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

	var lns []*listeners
	var addrs []string
	closeAll := func() {
		for _, l := range lns {
			l.close()
		}
	}
	for _, l := range s.cfg.Listen {
		ln, err := s.listen(l)
		if err != nil {
			closeAll()
			return err
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.addr)
	}

	errc := make(chan error, 1)
	var wg, async sync.WaitGroup
	for _, ln := range lns {
		for _, u := range ln.udp {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serveUDP(u, &async)
			}()
		}
		for _, srv := range ln.srvs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.ActivateAndServe(); err != nil {
					select {
					case errc <- fmt.Errorf("dns serve %s: %w", srvAddr(srv), err):
					default:
					}
				}
			}()
		}
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
	for _, ln := range lns {
		for _, u := range ln.udp {
			u.c.Close()
		}
		for _, srv := range ln.srvs {
			_ = srv.ShutdownContext(sctx)
		}
	}
	wg.Wait()
	async.Wait()
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
// address: one read loop per CPU keeps every core busy under load. Past 16
// a node's DNS is not the bottleneck, and every loop keeps its own packed
// answers.
var udpSockets = min(runtime.NumCPU(), 16)

// listeners are the sockets of one listen address.
type listeners struct {
	addr string
	udp  []*udpConn     // read loops
	srvs []*mdns.Server // TCP (and UDP with miekgUDP)
}

func (l *listeners) close() {
	for _, u := range l.udp {
		u.c.Close()
	}
	for _, srv := range l.srvs {
		if srv.PacketConn != nil {
			srv.PacketConn.Close()
		}
		if srv.Listener != nil {
			srv.Listener.Close()
		}
	}
}

// listen binds UDP and TCP on one address. With port 0 the UDP port is
// chosen first and TCP binds the same number (retried if TCP has it taken).
func (s *Server) listen(addr string) (*listeners, error) {
	_, port, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		ln, err := s.listenOnce(addr)
		if err == nil || port != "0" || try == 4 {
			return ln, err
		}
	}
}

func (s *Server) listenOnce(addr string) (*listeners, error) {
	host, port, _ := net.SplitHostPort(addr)
	ln := &listeners{}
	for i := 0; i < udpSockets; i++ {
		u, err := listenUDP(net.JoinHostPort(host, port), isWildcard(host))
		if err != nil {
			ln.close()
			return nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
		if port == "0" {
			port = strconv.Itoa(u.c.LocalAddr().(*net.UDPAddr).Port)
		}
		if s.miekgUDP {
			ln.srvs = append(ln.srvs, &mdns.Server{PacketConn: u.c, Handler: s, UDPSize: readUDPSize})
		} else {
			ln.udp = append(ln.udp, u)
		}
	}
	ln.addr = net.JoinHostPort(host, port)
	tl, err := net.Listen("tcp", ln.addr)
	if err != nil {
		ln.close()
		return nil, fmt.Errorf("dns listen tcp %s: %w", ln.addr, err)
	}
	ln.srvs = append(ln.srvs, &mdns.Server{
		Listener:    newLimitListener(tl, s.cfg.MaxTCPConns),
		Handler:     s,
		ReadTimeout: 2 * time.Second,
		IdleTimeout: func() time.Duration { return 10 * time.Second },
	})
	return ln, nil
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
