package dns

import (
	"errors"
	"sync"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries       *prometheus.CounterVec
	duration      prometheus.Histogram
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	forwardErrors prometheus.Counter
	rateLimited   prometheus.Counter

	// Resolved label children: WithLabelValues hashes its labels on every
	// call, which is measurable at tens of thousands of queries per second.
	mu       sync.RWMutex
	children map[[2]int]prometheus.Counter
}

// qtypeLabels bounds the qtype label to well-known types.
var qtypeLabels = map[uint16]string{
	mdns.TypeA: "A", mdns.TypeAAAA: "AAAA", mdns.TypeSRV: "SRV", mdns.TypePTR: "PTR",
	mdns.TypeCNAME: "CNAME", mdns.TypeTXT: "TXT", mdns.TypeSOA: "SOA", mdns.TypeNS: "NS",
	mdns.TypeMX: "MX", mdns.TypeANY: "ANY", mdns.TypeHTTPS: "HTTPS", mdns.TypeSVCB: "SVCB",
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_dns_queries_total", Help: "DNS queries answered, by query type and response code.",
		}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "skiff_dns_request_duration_seconds",
			Help:    "Time from a parsed query to its written answer.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5},
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_dns_cache_hits_total", Help: "Forwarded names answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_dns_cache_misses_total", Help: "Forwarded names not in the cache.",
		}),
		forwardErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_dns_forward_errors_total", Help: "Failed exchanges with upstream resolvers.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_dns_rate_limited_total", Help: "Queries refused by the per-client rate limit.",
		}),
		children: make(map[[2]int]prometheus.Counter),
	}
	for _, c := range []prometheus.Collector{m.queries, m.duration, m.cacheHits, m.cacheMisses, m.forwardErrors, m.rateLimited} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				// A second Server on the same registry (tests, restarts
				// in one process) shares the existing collectors.
				if err := adoptExisting(m, c, are.ExistingCollector); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
	}
	return m, nil
}

func adoptExisting(m *metrics, mine, existing prometheus.Collector) error {
	switch mine {
	case m.queries:
		m.queries = existing.(*prometheus.CounterVec)
	case m.duration:
		m.duration = existing.(prometheus.Histogram)
	case m.cacheHits:
		m.cacheHits = existing.(prometheus.Counter)
	case m.cacheMisses:
		m.cacheMisses = existing.(prometheus.Counter)
	case m.forwardErrors:
		m.forwardErrors = existing.(prometheus.Counter)
	case m.rateLimited:
		m.rateLimited = existing.(prometheus.Counter)
	default:
		return errors.New("register dns metrics: unknown collector")
	}
	return nil
}

func (m *metrics) count(qtype uint16, rcode int) {
	k := [2]int{int(qtype), rcode}
	m.mu.RLock()
	c := m.children[k]
	m.mu.RUnlock()
	if c == nil {
		t, ok := qtypeLabels[qtype]
		if !ok {
			t = "other"
		}
		r, ok := mdns.RcodeToString[rcode]
		if !ok {
			r = "other"
		}
		c = m.queries.WithLabelValues(t, r)
		m.mu.Lock()
		if len(m.children) < 1024 {
			m.children[k] = c
		}
		m.mu.Unlock()
	}
	c.Inc()
}
