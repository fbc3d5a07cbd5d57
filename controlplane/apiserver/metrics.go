package apiserver

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type requestLabel struct{ verb, resource, sub string }

// metrics is per Server (its own registry), so several servers can live in one process.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watchers prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skiff_apiserver_request_total",
		Help: "API requests by verb, resource, subresource and HTTP code."}, []string{"verb", "resource", "subresource", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "skiff_apiserver_request_duration_seconds",
		Help:    "API request latency by verb and resource (watches: their whole duration).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"verb", "resource", "subresource"})
	m.watchers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "skiff_apiserver_watchers", Help: "Open watch streams."})
	m.reg.MustRegister(m.requests, m.latency, m.watchers, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(l requestLabel, code int, d time.Duration) {
	m.requests.WithLabelValues(l.verb, l.resource, l.sub, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(l.verb, l.resource, l.sub).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// recorder remembers the status code; it passes Flush through for watches and Unwrap for
// http.ResponseController (full-duplex exec).
type recorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
	protobuf    bool // the client prefers protobuf responses
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func groupResource(res string) schema.GroupResource { return schema.GroupResource{Resource: res} }

func (s *Server) logWarn(msg string, args ...any) { slog.Warn(msg, args...) }
