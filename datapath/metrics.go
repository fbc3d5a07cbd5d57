package datapath

import (
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descPackets = prometheus.NewDesc("skiff_service_packets_total",
		"Packets (and socket-LB connects) translated for a Service port, from the per-CPU BPF counters.",
		[]string{"namespace", "service", "port", "protocol", "traffic"}, nil)
	descBytes = prometheus.NewDesc("skiff_service_bytes_total",
		"Bytes translated for a Service port, from the per-CPU BPF counters.",
		[]string{"namespace", "service", "port", "protocol", "traffic"}, nil)
	descDrops = prometheus.NewDesc("skiff_datapath_drops_total",
		"Packets the datapath dropped or refused, by reason (stable codes in bpf/lib/drop.h).",
		[]string{"reason", "code"}, nil)
)

// Collector exports the per-service and drop counters; register it with a Prometheus
// registry: prometheus.MustRegister(dp.Collector()).
func (d *Datapath) Collector() prometheus.Collector { return collector{d} }

type collector struct{ d *Datapath }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPackets
	ch <- descBytes
	ch <- descDrops
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	stats, err := c.d.ServiceStats()
	if err != nil {
		slog.Warn("datapath metrics: service counters", "err", err)
	}
	for _, s := range stats {
		traffic := "all"
		if s.Local {
			traffic = "local"
		}
		l := []string{s.Namespace, s.Name, s.Port, s.Protocol, traffic}
		ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(s.Packets), l...)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(s.Bytes), l...)
	}
	drops, err := c.d.Drops()
	if err != nil {
		slog.Warn("datapath metrics: drops", "err", err)
		return
	}
	for r, n := range drops {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(n), r.String(), strconv.Itoa(int(r)))
	}
}
