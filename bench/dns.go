package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffnet/skiff/dns"
)

// DNSConfig is `skiff bench dns`.
type DNSConfig struct {
	// Peer is another DNS server (ADDR:PORT) serving the same records, measured side by side.
	Peer     string
	Services int // cluster size (default 1000 services x 10 endpoints)
	Duration time.Duration
	Workers  int // parallel clients for the QPS figure (default 4)
	Progress io.Writer
}

// ErrNotAvailable marks a benchmark whose subject is not built yet.
var ErrNotAvailable = errors.New("not available yet")

// DNSResult is one server's figures.
type DNSResult struct {
	Server     string  `json:"server"`
	QPS        float64 `json:"qps"`
	P50, P99   float64 // µs, one query at a time
	Queries    int64   `json:"queries"`
	Wrong      int64   `json:"wrong"` // answers that are not the service's ClusterIP
	Failed     int64   `json:"failed"`
	LatQueries int64   `json:"latency_queries"`
}

// RunDNS starts skiff's DNS server on loopback, fed from an in-memory API holding N services,
// and measures A-record QPS and latency for their cluster names; with Peer, the same queries go
// to that server too. The result is a markdown table.
func RunDNS(ctx context.Context, cfg DNSConfig) (string, error) {
	if cfg.Services == 0 {
		cfg.Services = 1000
	}
	if cfg.Duration == 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Peer != "" {
		if _, _, err := net.SplitHostPort(cfg.Peer); err != nil {
			return "", fmt.Errorf("--peer %q: want ADDR:PORT, e.g. 10.96.0.10:53", cfg.Peer)
		}
	}
	set, err := NewServiceSet(cfg.Services, 10)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The DNS server follows a real API server, as on a node.
	_, client, stop, err := startAPIServer(ctx)
	if err != nil {
		return "", err
	}
	defer stop()
	fmt.Fprintf(cfg.Progress, "dns: creating %d services and their endpoint slices\n", len(set.Services))
	if err := createServices(ctx, client, set); err != nil {
		return "", err
	}
	srv, err := dns.New(dns.Config{
		Client:     client,
		Listen:     []string{"127.0.0.1:0"},
		Upstreams:  []string{},
		Pods:       dns.PodsDisabled,
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return "", fmt.Errorf("start skiff dns: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); !srv.Ready() || len(srv.Addrs()) == 0; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-errc:
			return "", fmt.Errorf("skiff dns stopped: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return "", errors.New("skiff dns did not sync its records within 30s")
		}
	}
	names := make([]string, cfg.Services)
	want := make([]string, cfg.Services)
	for i := range names {
		names[i] = fmt.Sprintf("%s.%s.svc.cluster.local.", ServiceName(i), Namespace)
		want[i] = ServiceIP(i).String()
	}
	targets := []string{"skiff=" + srv.Addrs()[0]}
	if cfg.Peer != "" {
		targets = append(targets, "peer="+cfg.Peer)
	}
	var results []DNSResult
	for _, t := range targets {
		label, addr, _ := strings.Cut(t, "=")
		fmt.Fprintf(cfg.Progress, "dns: measuring %s (%s), %d names\n", label, addr, len(names))
		r, err := measureDNS(ctx, addr, names, want, cfg)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", label, addr, err)
		}
		r.Server = label + " " + addr
		results = append(results, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# DNS benchmark\n\n%d services, A queries for random `svc.ns.svc.cluster.local` names over UDP on loopback; "+
		"QPS with %d parallel clients, latency one query at a time; %s each.\n\n", cfg.Services, cfg.Workers, cfg.Duration)
	b.WriteString("| server | QPS | p50 µs | p99 µs | wrong answers | failed |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %.1f | %d | %d |\n", r.Server, r.QPS, r.P50, r.P99, r.Wrong, r.Failed)
	}
	if len(results) == 2 && results[1].QPS > 0 {
		fmt.Fprintf(&b, "\nskiff / peer: QPS %.2f×, p50 %.2f×\n", results[0].QPS/results[1].QPS, results[0].P50/results[1].P50)
	}
	return b.String(), nil
}

func measureDNS(ctx context.Context, addr string, names, want []string, cfg DNSConfig) (DNSResult, error) {
	var r DNSResult
	ask := func(c *mdns.Conn, i int) (bool, error) {
		m := new(mdns.Msg)
		m.SetQuestion(names[i], mdns.TypeA)
		c.SetDeadline(time.Now().Add(time.Second))
		if err := c.WriteMsg(m); err != nil {
			return false, err
		}
		resp, err := c.ReadMsg()
		if err != nil {
			return false, err
		}
		if resp.Id != m.Id {
			return false, errors.New("reply id mismatch")
		}
		for _, a := range resp.Answer {
			if rr, ok := a.(*mdns.A); ok && rr.A.String() == want[i] {
				return true, nil
			}
		}
		return false, nil
	}
	dial := func() (*mdns.Conn, error) {
		nc, err := net.Dial("udp", addr)
		if err != nil {
			return nil, err
		}
		return &mdns.Conn{Conn: nc}, nil
	}
	// Latency: one query at a time.
	hist := hdrhistogram.New(1, int64(10*time.Second), 3)
	c, err := dial()
	if err != nil {
		return r, err
	}
	end := time.Now().Add(cfg.Duration / 2)
	for time.Now().Before(end) && ctx.Err() == nil {
		i := rand.IntN(len(names))
		t0 := time.Now()
		ok, err := ask(c, i)
		switch {
		case err != nil:
			r.Failed++
		case !ok:
			r.Wrong++
		default:
			hist.RecordValue(int64(time.Since(t0)))
			r.LatQueries++
		}
	}
	c.Close()
	if r.LatQueries == 0 {
		return r, fmt.Errorf("no correct answers (%d wrong, %d failed): does it serve the same records?", r.Wrong, r.Failed)
	}
	r.P50 = float64(hist.ValueAtQuantile(50)) / 1e3
	r.P99 = float64(hist.ValueAtQuantile(99)) / 1e3
	// QPS: Workers clients in parallel, each one query at a time.
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end = start.Add(cfg.Duration / 2)
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial()
			if err != nil {
				mu.Lock()
				r.Failed++
				mu.Unlock()
				return
			}
			defer c.Close()
			var n, wrong, failed int64
			for time.Now().Before(end) && ctx.Err() == nil {
				ok, err := ask(c, rand.IntN(len(names)))
				switch {
				case err != nil:
					failed++
				case !ok:
					wrong++
				default:
					n++
				}
			}
			mu.Lock()
			r.Queries += n
			r.Wrong += wrong
			r.Failed += failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.QPS = float64(r.Queries) / time.Since(start).Seconds()
	return r, nil
}
