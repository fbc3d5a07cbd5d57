package dns

import (
	"errors"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries       *prometheus.CounterVec
	duration      prometheus.Histogram
	cacheHits     prometheus.Counter
	packedHits    prometheus.Counter
	cacheMisses   prometheus.Counter
	forwardErrors prometheus.Counter
	rateLimited   prometheus.Counter
	dropped       *prometheus.CounterVec

	// Resolved label children, filled on first use: WithLabelValues hashes
	// its labels on every call, and a shared lock would be touched by every
	// query on every core.
	children [len(qtypeSlots) + 1][maxRcodeSlot + 2]atomic.Pointer[counterRef]
}

type counterRef struct{ c prometheus.Counter }

// maxRcodeSlot is the largest rcode with its own label (BADCOOKIE).
const maxRcodeSlot = mdns.RcodeBadCookie

// qtypeSlots orders the qtypes with their own label; others count as "other".
var qtypeSlots = [...]uint16{
	mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypePTR, mdns.TypeCNAME, mdns.TypeTXT,
	mdns.TypeSOA, mdns.TypeNS, mdns.TypeMX, mdns.TypeANY, mdns.TypeHTTPS, mdns.TypeSVCB,
}

func qtypeSlot(qtype uint16) int {
	for i, t := range qtypeSlots {
		if t == qtype {
			return i
		}
	}
	return len(qtypeSlots)
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
		packedHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_dns_answer_cache_hits_total", Help: "Cluster answers sent pre-packed by a UDP read loop (valid until the next index change).",
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
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_dns_dropped_total",
			Help: "UDP packets dropped unanswered: short (no DNS header), oversized (beyond the read buffer), response (QR set), busy (too many waiting on upstreams).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.queries, m.duration, m.cacheHits, m.packedHits, m.cacheMisses, m.forwardErrors, m.rateLimited, m.dropped} {
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
	case m.packedHits:
		m.packedHits = existing.(prometheus.Counter)
	case m.cacheMisses:
		m.cacheMisses = existing.(prometheus.Counter)
	case m.forwardErrors:
		m.forwardErrors = existing.(prometheus.Counter)
	case m.rateLimited:
		m.rateLimited = existing.(prometheus.Counter)
	case m.dropped:
		m.dropped = existing.(*prometheus.CounterVec)
	default:
		return errors.New("register dns metrics: unknown collector")
	}
	return nil
}

// answered counts one query by type and rcode. It is called before the
// answer is written, so that whoever has the answer sees it counted.
func (m *metrics) answered(r *mdns.Msg, rcode int) {
	var qtype uint16
	if len(r.Question) > 0 {
		qtype = r.Question[0].Qtype
	}
	m.count(qtype, rcode)
}

// took records the time from a parsed query to its written answer.
func (m *metrics) took(start time.Time) {
	m.duration.Observe(time.Since(start).Seconds())
}

func (m *metrics) count(qtype uint16, rcode int) {
	ts := qtypeSlot(qtype)
	rs := rcode
	if rs < 0 || rs > maxRcodeSlot {
		rs = maxRcodeSlot + 1
	}
	slot := &m.children[ts][rs]
	ref := slot.Load()
	if ref == nil {
		t := "other"
		if ts < len(qtypeSlots) {
			t = qtypeLabels[qtypeSlots[ts]]
		}
		r, ok := mdns.RcodeToString[rcode]
		if !ok || rs > maxRcodeSlot {
			r = "other"
		}
		// Two cores racing here resolve the same child.
		ref = &counterRef{c: m.queries.WithLabelValues(t, r)}
		slot.Store(ref)
	}
	ref.c.Inc()
}
