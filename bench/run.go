package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Config is one `skiff bench datapath` run.
type Config struct {
	Modes           []string
	Services        []int
	Backends        int
	Duration        time.Duration
	Runs            int
	IptablesBackend string // nft (default) or legacy
	// MaxRuleServices caps N for the iptables and nftables modes (default 10000): beyond it one
	// sync takes minutes. The eBPF modes go up to whatever is asked.
	MaxRuleServices int
	NetnsPrefix     string // default "skb"
	CgroupRoot      string // default /sys/fs/cgroup/unified
	CgroupPrefix    string // default "skiff-bench-"
	PinPrefix       string // default /sys/fs/bpf/skiff-bench-
	// Loadgen re-runs this program as the load-generator child (see Launcher).
	LoadgenExe  string
	LoadgenArgs []string
	// VerifyOnly checks that traffic reaches the right backends and times nothing.
	VerifyOnly bool
	Progress   io.Writer
	// Ctx stops the run (the topology is still removed); nil = never.
	Ctx context.Context
}

func (c *Config) defaults() error {
	if len(c.Modes) == 0 {
		c.Modes = AllModes
	}
	for _, m := range c.Modes {
		if !slices.Contains(AllModes, m) {
			return fmt.Errorf("--modes: unknown mode %q, want some of %s", m, strings.Join(AllModes, ","))
		}
	}
	if len(c.Services) == 0 {
		c.Services = []int{1, 1000, 10000}
	}
	for _, n := range c.Services {
		if n < 1 || n > 1000000 {
			return fmt.Errorf("--services: %d out of range, want 1..1000000", n)
		}
	}
	if c.Backends == 0 {
		c.Backends = 10
	}
	if c.Backends < 1 || c.Backends > 250 {
		return fmt.Errorf("--backends: %d out of range, want 1..250", c.Backends)
	}
	if c.Duration == 0 {
		c.Duration = 5 * time.Second
	}
	if c.Duration < 100*time.Millisecond {
		return fmt.Errorf("--duration: %v too short, want at least 100ms", c.Duration)
	}
	if c.Runs == 0 {
		c.Runs = 3
	}
	if c.Runs < 1 {
		return fmt.Errorf("--runs: want at least 1")
	}
	if c.IptablesBackend == "" {
		c.IptablesBackend = "nft"
	}
	if c.IptablesBackend != "nft" && c.IptablesBackend != "legacy" {
		return fmt.Errorf("--iptables-backend %q: want nft or legacy", c.IptablesBackend)
	}
	if c.MaxRuleServices == 0 {
		c.MaxRuleServices = 10000
	}
	if c.NetnsPrefix == "" {
		c.NetnsPrefix = "skb"
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/sys/fs/cgroup/unified"
	}
	if c.CgroupPrefix == "" {
		c.CgroupPrefix = "skiff-bench-"
	}
	if c.PinPrefix == "" {
		c.PinPrefix = "/sys/fs/bpf/skiff-bench-"
	}
	if c.Ctx == nil {
		c.Ctx = context.Background()
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// Run builds the topology, measures every mode at every N and returns the report. A mode that
// fails at some N gets an error entry in the report; the others go on.
func Run(cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("skiff bench datapath needs root (network namespaces, iptables, BPF)")
	}
	rep := newReport(cfg)
	topo, err := NewTopology(cfg.NetnsPrefix, cfg.Backends)
	if err != nil {
		return nil, fmt.Errorf("build topology: %w", err)
	}
	defer topo.Close()
	srv, err := StartServers(topo.Backends)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	cg, err := CreateCgroup(cfg.CgroupRoot, cfg.CgroupPrefix+topo.ID)
	if err != nil {
		return nil, err
	}
	defer RemoveCgroup(cg)
	env := &Env{Topo: topo, Cgroup: cg, PinPrefix: cfg.PinPrefix, IptablesBackend: cfg.IptablesBackend, Ctx: cfg.Ctx}
	l := &Launcher{Exe: cfg.LoadgenExe, Args: cfg.LoadgenArgs, Client: topo.Client, Cgroup: cg, Ctx: cfg.Ctx}
	fmt.Fprintf(cfg.Progress, "topology %s: client, node, %d backends; cgroup %s\n", topo.ID, cfg.Backends, cg)

	for _, n := range cfg.Services {
		set, err := NewServiceSet(n, cfg.Backends)
		if err != nil {
			return nil, err
		}
		for _, name := range cfg.Modes {
			if err := cfg.Ctx.Err(); err != nil {
				return rep, fmt.Errorf("interrupted: %w", err)
			}
			if (name == ModeIptables || name == ModeNftables) && n > cfg.MaxRuleServices {
				fmt.Fprintf(cfg.Progress, "[N=%d] %s: skipped (above --max-rule-services %d)\n", n, name, cfg.MaxRuleServices)
				continue
			}
			results, err := runMode(cfg, env, l, name, set)
			if err != nil {
				fmt.Fprintf(cfg.Progress, "[N=%d] %s: FAILED: %v\n", n, name, err)
			}
			if len(results) == 0 {
				results = []*Result{{Mode: name, Position: Last, N: n, B: cfg.Backends}}
			}
			for _, r := range results {
				if err != nil && r.Error == "" {
					r.Error = err.Error()
				}
				rep.Results = append(rep.Results, r)
			}
		}
	}
	rep.Finished = time.Now().UTC()
	rep.Host.LoadEnd = loadAvg()
	return rep, nil
}

// SlowSync is the full-sync time above which programming is timed once, not every run.
const SlowSync = 10 * time.Second

// positions are the places of the measured service: both ends for iptables, whose chain is
// walked linearly; the others look services up in a map, where position does not matter.
func positions(mode string, n int) []Position {
	if mode == ModeIptables && n > 1 {
		return []Position{Last, First}
	}
	return []Position{Last}
}

func runMode(cfg Config, env *Env, l *Launcher, name string, set *ServiceSet) ([]*Result, error) {
	p := func(format string, a ...any) {
		fmt.Fprintf(cfg.Progress, "[N=%d] %s: %s\n", set.N, name, fmt.Sprintf(format, a...))
	}
	m, err := NewMode(name)
	if err != nil {
		return nil, err
	}
	if err := m.Setup(env, set.N, set.B); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	defer func() {
		if err := m.Clear(); err != nil {
			p("clear: %v", err)
		}
		if err := m.Teardown(); err != nil {
			p("teardown: %v", err)
		}
	}()
	defer func() { // leave the set as built for the next mode, whatever happened
		i := set.UpdateTarget()
		svc, slice := set.Updated(i, false)
		set.Replace(i, svc, slice)
	}()
	byPos := map[Position]*Result{}
	var out []*Result
	for _, pos := range positions(name, set.N) {
		r := &Result{Mode: name, Position: pos, N: set.N, B: set.B, Metrics: map[string]*Stat{}}
		byPos[pos] = r
		out = append(out, r)
	}
	main := byPos[Last]
	slow := false // one sync took so long that repeating it would take the run hostage
	for run := 0; run < cfg.Runs; run++ {
		if err := cfg.Ctx.Err(); err != nil {
			return out, err
		}
		// Programming: from nothing to N services, timed; then the memory it holds. When one
		// sync takes more than SlowSync, later runs keep the loaded rules and time only traffic.
		program := run == 0 || !slow
		if program {
			if err := m.Clear(); err != nil {
				return out, fmt.Errorf("clear: %w", err)
			}
			runtime.GC()
			slab0 := slabBytes()
			t0 := time.Now()
			if err := m.FullSync(set); err != nil {
				return out, fmt.Errorf("full sync of %d services: %w", set.N, err)
			}
			syncDur := time.Since(t0)
			if m.Translates() {
				main.add("sync_full_ms", float64(syncDur)/1e6)
			}
			if run == 0 && m.Translates() && slab0 > 0 {
				main.add("mem_kernel_kb", float64(slabBytes()-slab0)/1024)
			}
			if syncDur > SlowSync && !slow && cfg.Runs > 1 {
				slow = true
				p("full sync took %v: later runs reuse the loaded rules and time only the traffic", syncDur.Round(time.Millisecond))
			}
		}
		if run == 0 {
			if b, how, err := m.Memory(); err == nil && how != "none" {
				main.add("mem_rules_kb", float64(b)/1024)
				main.MemoryHow = how
			} else if err != nil {
				p("memory: %v", err)
			}
		}
		// Every mode proves it reaches the right backends before anything is timed.
		for _, pos := range positions(name, set.N) {
			if err := verifyMode(l, m, set, pos); err != nil {
				return out, fmt.Errorf("verify (service at %s): %w", pos, err)
			}
		}
		if run == 0 {
			p("verified: traffic reaches the %d backends of the measured service", set.B)
		}
		if cfg.VerifyOnly {
			break
		}
		for _, pos := range positions(name, set.N) {
			r := byPos[pos]
			tcp, udp := Targets(m, set, pos)
			kinds := []string{LoadRR, LoadCRR, LoadUDP, LoadStream}
			if pos != Last {
				kinds = []string{LoadRR, LoadCRR}
			}
			for _, kind := range kinds {
				spec := LoadSpec{Kind: kind, TCP: tcp, UDP: udp, Duration: cfg.Duration}
				if kind == LoadRR || kind == LoadStream {
					spec.TCP = tcp[run%len(tcp):][:1] // direct: a different backend each run
				}
				res, err := l.Run(spec)
				if err != nil {
					return out, err
				}
				r.addLoad(res)
			}
		}
		// One service changes at N: an endpoint added, then removed again, each timed.
		if m.Translates() && program {
			updates := []bool{true, false}
			if slow {
				updates = updates[:1] // each costs as much as a full sync
			}
			for _, grow := range updates {
				i := set.UpdateTarget()
				before := &svcState{svc: set.Services[i], slice: set.Slices[i]}
				svc, slice := set.Updated(i, grow)
				set.Replace(i, svc, slice)
				t0 := time.Now()
				err := m.Update(set, i, before)
				d := time.Since(t0)
				if err != nil {
					return out, fmt.Errorf("update one service: %w", err)
				}
				main.add("sync_update_ms", float64(d)/1e6)
			}
		}
		p("run %d/%d: %s", run+1, cfg.Runs, main.summary())
	}
	return out, nil
}

// verifyMode checks that new TCP connections and UDP exchanges to the measured service are
// answered by its backends, on its target ports, and (for modes that balance) by more than one.
func verifyMode(l *Launcher, m Mode, set *ServiceSet, pos Position) error {
	tcp, udp := Targets(m, set, pos)
	count := 4 * set.B
	res, err := l.Run(LoadSpec{Kind: LoadVerify, TCP: tcp, UDP: udp, Count: count})
	if err != nil {
		return err
	}
	return checkIdentities(res.Seen, set, pos, count, m.Translates())
}

func checkIdentities(seen []Identity, set *ServiceSet, pos Position, count int, balanced bool) error {
	tp, up := set.Ports(pos)
	tcpSeen, udpSeen := map[int]bool{}, map[int]bool{}
	for _, id := range seen {
		want, where := tp, tcpSeen
		if id.Port < 0 {
			id.Port, want, where = -id.Port, up, udpSeen
		}
		if id.Port != want {
			return fmt.Errorf("answered on port %d, want %d: the wrong service's translation was used", id.Port, want)
		}
		if id.Backend < 0 || id.Backend >= set.B {
			return fmt.Errorf("answered by backend %d, not one of the service's %d", id.Backend, set.B)
		}
		where[id.Backend] = true
	}
	if len(seen) != 2*count {
		return fmt.Errorf("%d answers, want %d", len(seen), 2*count)
	}
	if balanced && set.B > 1 && (len(tcpSeen) < 2 || len(udpSeen) < 2) {
		return fmt.Errorf("not balanced: %d TCP and %d UDP backends answered %d requests each, want at least 2", len(tcpSeen), len(udpSeen), count)
	}
	return nil
}

// slabBytes is the kernel's unreclaimable slab (where netfilter rules and BPF map metadata
// live), from /proc/meminfo. Machine-wide, so only a rough figure on a busy machine.
func slabBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "SUnreclaim:") {
			var kb int64
			fmt.Sscanf(strings.TrimPrefix(line, "SUnreclaim:"), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}
