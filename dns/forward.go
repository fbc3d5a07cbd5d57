package dns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

var errBusy = errors.New("too many forwarded queries in flight")

// forwarder resolves names outside the cluster zone through the upstreams,
// with a cache and a bound on the queries waiting at once.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	cache     *respCache
	maxPos    time.Duration
	maxNeg    time.Duration
	slots     chan struct{} // one per goroutine waiting on an upstream answer
	next      atomic.Uint32 // rotates the first upstream tried
	udp, tcp  *mdns.Client
	m         *metrics

	mu       sync.Mutex
	inflight map[cacheKey]*call // identical concurrent queries share one exchange
}

type call struct {
	done chan struct{}
	msg  *mdns.Msg
	err  error
}

func newForwarder(cfg *Config, m *metrics) *forwarder {
	f := &forwarder{
		upstreams: cfg.Upstreams,
		timeout:   cfg.ForwardTimeout,
		maxPos:    cfg.MaxCacheTTL,
		maxNeg:    cfg.MaxNegativeTTL,
		slots:     make(chan struct{}, cfg.MaxForwards),
		udp:       &mdns.Client{Net: "udp", UDPSize: 4096, Timeout: cfg.ForwardTimeout},
		tcp:       &mdns.Client{Net: "tcp", Timeout: cfg.ForwardTimeout},
		m:         m,
		inflight:  make(map[cacheKey]*call),
	}
	if cfg.CacheSize > 0 {
		f.cache = newCache(cfg.CacheSize)
	}
	return f
}

// cached returns a cached answer for (name, qtype) without waiting, or nil.
// Misses are counted by resolve, which a miss leads to.
func (f *forwarder) cached(name string, qtype uint16, do, cd bool) *mdns.Msg {
	if len(f.upstreams) == 0 {
		return nil
	}
	m := f.cache.get(cacheKey{name: strings.ToLower(name), qtype: qtype, do: do, cd: cd})
	if m != nil {
		f.m.cacheHits.Inc()
	}
	return m
}

// resolve answers (name, qtype) from the cache or the upstreams. The reply
// belongs to the caller, who must set its ID and question.
func (f *forwarder) resolve(ctx context.Context, name string, qtype uint16, do, cd bool) (*mdns.Msg, error) {
	if len(f.upstreams) == 0 {
		return nil, errors.New("no upstream resolvers configured")
	}
	k := cacheKey{name: strings.ToLower(name), qtype: qtype, do: do, cd: cd}
	if m := f.cache.get(k); m != nil {
		f.m.cacheHits.Inc()
		return m, nil
	}
	f.m.cacheMisses.Inc()

	// Bound the goroutines parked here: a flood of outside names answers
	// SERVFAIL at once instead of piling up for the upstream timeout.
	select {
	case f.slots <- struct{}{}:
		defer func() { <-f.slots }()
	default:
		return nil, errBusy
	}

	f.mu.Lock()
	if c, ok := f.inflight[k]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			return nil, c.err
		}
		return c.msg.Copy(), nil
	}
	c := &call{done: make(chan struct{})}
	f.inflight[k] = c
	f.mu.Unlock()

	c.msg, c.err = f.exchange(ctx, k)
	if c.err == nil {
		f.cache.put(k, c.msg, cacheTTL(c.msg, f.maxPos, f.maxNeg))
	}
	f.mu.Lock()
	delete(f.inflight, k)
	f.mu.Unlock()
	close(c.done)
	if c.err != nil {
		return nil, c.err
	}
	return c.msg.Copy(), nil
}

func (f *forwarder) exchange(ctx context.Context, k cacheKey) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	q := new(mdns.Msg)
	q.SetQuestion(k.name, k.qtype)
	q.RecursionDesired = true
	q.CheckingDisabled = k.cd
	q.SetEdns0(4096, k.do)

	var errs []error
	start := int(f.next.Add(1))
	for i := range f.upstreams {
		up := f.upstreams[(start+i)%len(f.upstreams)]
		r, _, err := f.udp.ExchangeContext(ctx, q, up)
		if err == nil && r.Truncated {
			r, _, err = f.tcp.ExchangeContext(ctx, q, up)
		}
		if err != nil {
			f.m.forwardErrors.Inc()
			errs = append(errs, fmt.Errorf("upstream %s: %w", up, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if r.Rcode == mdns.RcodeServerFailure || r.Rcode == mdns.RcodeRefused {
			errs = append(errs, fmt.Errorf("upstream %s: %s", up, mdns.RcodeToString[r.Rcode]))
			continue
		}
		// Strip the upstream's OPT: the server adds its own for the client.
		extra := r.Extra[:0]
		for _, rr := range r.Extra {
			if rr.Header().Rrtype != mdns.TypeOPT {
				extra = append(extra, rr)
			}
		}
		r.Extra = extra
		return r, nil
	}
	return nil, fmt.Errorf("forward %s %s: %w", k.name, mdns.TypeToString[k.qtype], errors.Join(errs...))
}
