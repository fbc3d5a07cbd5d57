package bench

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is everything one run measured; report.json is this, marshalled.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Host     Host      `json:"host"`
	Config   struct {
		Modes           []string `json:"modes"`
		Services        []int    `json:"services"`
		Backends        int      `json:"backends"`
		Duration        string   `json:"duration"`
		Runs            int      `json:"runs"`
		IptablesBackend string   `json:"iptables_backend"`
	} `json:"config"`
	Results []*Result `json:"results"`
}

// Host describes the machine.
type Host struct {
	Kernel string `json:"kernel"`
	CPUs   int    `json:"cpus"`
	Model  string `json:"cpu_model"`
	// Load averages (/proc/loadavg) when the run started and ended: other work on the machine
	// is the first suspect for a noisy figure.
	Iptables  string `json:"iptables,omitempty"` // `iptables --version`
	Nft       string `json:"nft,omitempty"`
	LoadStart string `json:"loadavg_start,omitempty"`
	LoadEnd   string `json:"loadavg_end,omitempty"`
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Result is one mode at one N (and, for iptables, one position of the measured service).
type Result struct {
	Mode      string           `json:"mode"`
	Position  Position         `json:"position"`
	N         int              `json:"services"`
	B         int              `json:"backends"`
	Metrics   map[string]*Stat `json:"metrics"`
	MemoryHow string           `json:"memory_how,omitempty"`
	// Unfinished are metrics whose operation was killed at its deadline: metric -> the deadline
	// ("5m0s"). The report shows them as "did not finish in 5m0s".
	Unfinished map[string]string `json:"unfinished,omitempty"`
	// LoadedBy says how the rules were loaded when the timed full sync did not finish.
	LoadedBy   string `json:"loaded_by,omitempty"`
	UpdateNote string `json:"update_note,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Stat is one metric over the runs.
type Stat struct {
	Runs   []float64 `json:"runs"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

// Metric names, units and what they mean; the order is the report's.
var metricInfo = []struct{ Name, Unit, Title string }{
	{"rr_rate", "req/s", "persistent TCP request/response rate"},
	{"rr_p50_us", "µs", "persistent TCP p50 latency"},
	{"rr_p90_us", "µs", "persistent TCP p90 latency"},
	{"rr_p99_us", "µs", "persistent TCP p99 latency"},
	{"crr_rate", "conn/s", "new connection per request rate"},
	{"crr_p50_us", "µs", "new connection p50 latency"},
	{"crr_p99_us", "µs", "new connection p99 latency"},
	{"udp_rate", "req/s", "UDP request/response rate"},
	{"udp_p50_us", "µs", "UDP p50 latency"},
	{"udp_p99_us", "µs", "UDP p99 latency"},
	{"stream_gbps", "Gbit/s", "single-stream TCP throughput"},
	{"rr_proc_cpu_us", "µs/req", "CPU per persistent request (client + servers, rusage)"},
	{"crr_proc_cpu_us", "µs/conn", "CPU per new-connection request (client + servers, rusage)"},
	{"udp_proc_cpu_us", "µs/req", "CPU per UDP request (client + servers, rusage)"},
	{"rr_cpu_us", "µs/req", "CPU per persistent request (whole machine, /proc/stat: includes other load)"},
	{"crr_cpu_us", "µs/conn", "CPU per new-connection request (whole machine, /proc/stat: includes other load)"},
	{"sync_full_ms", "ms", "full sync of N services"},
	{"sync_update_ms", "ms", "one service update at N (iptables: whole-table restore)"},
	{"sync_update_partial_ms", "ms", "one service update at N, kube-proxy ≥ 1.27 partial iptables restore"},
	{"mem_rules_kb", "KiB", "rules / maps size"},
	{"mem_kernel_kb", "KiB", "kernel slab growth on full sync"},
}

// higherBetter says which way a metric improves.
func higherBetter(metric string) bool {
	return strings.HasSuffix(metric, "_rate") || metric == "stream_gbps"
}

func newReport(cfg Config) *Report {
	r := &Report{Started: time.Now().UTC()}
	r.Config.Modes, r.Config.Services, r.Config.Backends = cfg.Modes, cfg.Services, cfg.Backends
	r.Config.Duration, r.Config.Runs, r.Config.IptablesBackend = cfg.Duration.String(), cfg.Runs, cfg.IptablesBackend
	r.Host.CPUs = runtime.NumCPU()
	r.Host.LoadStart = loadAvg()
	if out, err := exec.Command("iptables", "--version").Output(); err == nil {
		r.Host.Iptables = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("nft", "--version").Output(); err == nil {
		r.Host.Nft = strings.TrimPrefix(strings.TrimSpace(string(out)), "nftables ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.Host.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.Host.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return r
}

func (r *Result) add(metric string, v float64) {
	if r.Metrics == nil {
		r.Metrics = map[string]*Stat{}
	}
	s := r.Metrics[metric]
	if s == nil {
		s = &Stat{}
		r.Metrics[metric] = s
	}
	s.Runs = append(s.Runs, v)
	sorted := slices.Clone(s.Runs)
	slices.Sort(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	if n := len(sorted); n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
}

func (r *Result) addLoad(res LoadResult) {
	secs := res.Elapsed.Seconds()
	perReq := func(d time.Duration) float64 { return float64(d) / 1e3 / float64(max(res.Requests, 1)) }
	switch res.Kind {
	case LoadRR, LoadCRR, LoadUDP:
		k := res.Kind
		r.add(k+"_rate", float64(res.Requests)/secs)
		r.add(k+"_p50_us", res.P50)
		r.add(k+"_p99_us", res.P99)
		if k == LoadRR {
			r.add(k+"_p90_us", res.P90)
		}
		r.add(k+"_proc_cpu_us", perReq(res.ProcCPU))
		if k != LoadUDP {
			r.add(k+"_cpu_us", perReq(res.SysCPU))
		}
	case LoadStream:
		r.add("stream_gbps", float64(res.Bytes)*8/secs/1e9)
	}
}

// unfinished records that metric's operation was killed after d.
func (r *Result) unfinished(metric string, d time.Duration) {
	if r.Unfinished == nil {
		r.Unfinished = map[string]string{}
	}
	r.Unfinished[metric] = d.String()
}

// DNF returns the deadline an operation of metric did not finish in, or "".
func (r *Result) DNF(metric string) string {
	if r == nil {
		return ""
	}
	return r.Unfinished[metric]
}

// DNFText describes an unfinished metric: "did not finish in 5m0s", or for a whole-table update
// skipped after the full sync did not finish, "not attempted (the full sync did not finish in
// 5m0s)"; "" when metric finished.
func (r *Result) DNFText(metric string) string {
	d := r.DNF(metric)
	switch {
	case d == "":
		return ""
	case metric == "sync_update_ms" && r.UpdateNote != "":
		return "not attempted (the full sync did not finish in " + d + ")"
	}
	return "did not finish in " + d
}

// Get returns the median of a metric, or false.
func (r *Result) Get(metric string) (float64, bool) {
	if r == nil || r.Metrics == nil || r.Metrics[metric] == nil {
		return 0, false
	}
	return r.Metrics[metric].Median, true
}

func (r *Result) summary() string {
	var parts []string
	for _, m := range []struct{ k, f string }{
		{"sync_full_ms", "sync %.1fms"}, {"rr_p50_us", "rr p50 %.1fµs"}, {"crr_rate", "crr %.0f/s"},
		{"udp_p50_us", "udp p50 %.1fµs"}, {"stream_gbps", "stream %.2fGbit/s"}, {"sync_update_ms", "update %.2fms"},
		{"sync_update_partial_ms", "partial update %.2fms"},
	} {
		if s := r.Metrics[m.k]; s != nil && len(s.Runs) > 0 {
			parts = append(parts, fmt.Sprintf(m.f, s.Runs[len(s.Runs)-1]))
		}
	}
	for _, m := range slices.Sorted(maps.Keys(r.Unfinished)) {
		parts = append(parts, m+" "+r.DNFText(m))
	}
	return strings.Join(parts, ", ")
}

// Find returns the result for mode at n and pos, or nil.
func (rep *Report) Find(mode string, n int, pos Position) *Result {
	for _, r := range rep.Results {
		if r.Mode == mode && r.N == n && r.Position == pos {
			return r
		}
	}
	return nil
}
