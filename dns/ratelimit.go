package dns

import (
	"net/netip"
	"sync"
	"time"
)

// maxClients bounds the per-client buckets; past it the table starts over,
// which at worst forgives a flood briefly and never grows memory.
const maxClients = 1 << 16

// limiter is a per-client-IP token bucket.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(qps float64) *limiter {
	if qps <= 0 {
		return nil
	}
	return &limiter{rate: qps, burst: 2 * qps, now: time.Now, buckets: make(map[netip.Addr]*bucket)}
}

// allow takes one token for ip.
func (l *limiter) allow(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= maxClients {
			l.buckets = make(map[netip.Addr]*bucket)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.rate
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
