package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	IptablesBackend string // backend of the iptables mode: nft (default) or legacy
	// MaxRuleServices caps N for the iptables and nftables modes (default 10000): beyond it one
	// sync takes minutes. The eBPF modes go up to whatever is asked.
	MaxRuleServices int
	// RuleTimeout bounds one iptables-restore or nft run (default DefaultCmdTimeout); a sync
	// that does not finish is reported as such.
	RuleTimeout  time.Duration
	NetnsPrefix  string // default "skb"
	CgroupRoot   string // default /sys/fs/cgroup/unified
	CgroupPrefix string // default "skiff-bench-"
	PinPrefix    string // default /sys/fs/bpf/skiff-bench-
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
	if c.IptablesBackend == "" {
		c.IptablesBackend = "nft"
	}
	if c.IptablesBackend != "nft" && c.IptablesBackend != "legacy" {
		return fmt.Errorf("--iptables-backend %q: want nft or legacy", c.IptablesBackend)
	}
	if len(c.Modes) == 0 {
		for _, m := range AllModes {
			// With --iptables-backend legacy the iptables mode is already the legacy one.
			if m == ModeIptablesLegacy && c.IptablesBackend == "legacy" {
				continue
			}
			c.Modes = append(c.Modes, m)
		}
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
	if c.MaxRuleServices == 0 {
		c.MaxRuleServices = 10000
	}
	if c.RuleTimeout == 0 {
		c.RuleTimeout = DefaultCmdTimeout
	}
	if c.RuleTimeout < time.Second {
		return fmt.Errorf("--rule-timeout: %v too short, want at least 1s", c.RuleTimeout)
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

// Run measures every mode at every N and returns the report. A mode that fails at some N gets
// an error entry in the report; the others go on.
func Run(cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("skiff bench datapath needs root (network namespaces, iptables, BPF)")
	}
	rep := newReport(cfg)
	fmt.Fprintf(cfg.Progress, "modes %s, N %v x %d backends, %d runs of %v each, modes interleaved\n",
		strings.Join(cfg.Modes, ","), cfg.Services, cfg.Backends, cfg.Runs, cfg.Duration)
	for _, n := range cfg.Services {
		if err := cfg.Ctx.Err(); err != nil {
			return rep, fmt.Errorf("interrupted: %w", err)
		}
		set, err := NewServiceSet(n, cfg.Backends)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, name := range cfg.Modes {
			if ruleMode(name) && n > cfg.MaxRuleServices {
				fmt.Fprintf(cfg.Progress, "[N=%d] %s: skipped (above --max-rule-services %d)\n", n, name, cfg.MaxRuleServices)
				continue
			}
			names = append(names, name)
		}
		rep.Results = append(rep.Results, runN(cfg, set, names)...)
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
	if iptablesFamily(mode) && n > 1 {
		return []Position{Last, First}
	}
	return []Position{Last}
}

// partialUpdater is a mode with a second, cheaper way of applying one service's change
// (kube-proxy's partial iptables restore).
type partialUpdater interface {
	PartialUpdate(set *ServiceSet, i int, before *svcState) error
}

// timeUpdates times one-service updates: grow (an endpoint added) then shrink (removed again).
// When a full sync is slow, only one update of each kind is timed, as each costs about as much.
// An update that does not finish in time is reported as such; the traffic figures stand.
// fullDNF is the deadline a full sync did not finish in: then whole-table updates, which
// restore the same input, are not attempted but reported as not finishing either.
func timeUpdates(m Mode, set *ServiceSet, r *Result, slow bool, fullDNF string) error {
	type step struct {
		metric string
		grow   bool
		apply  func(*ServiceSet, int, *svcState) error
	}
	full := []step{{"sync_update_ms", true, m.Update}, {"sync_update_ms", false, m.Update}}
	var partial []step
	if pu, ok := m.(partialUpdater); ok {
		partial = []step{{"sync_update_partial_ms", true, pu.PartialUpdate}, {"sync_update_partial_ms", false, pu.PartialUpdate}}
	}
	steps := append(full, partial...)
	switch {
	case fullDNF != "" && partial != nil:
		if r.Unfinished == nil {
			r.Unfinished = map[string]string{}
		}
		r.Unfinished["sync_update_ms"] = fullDNF
		r.UpdateNote = "the whole-table update restores the same input as the full sync, so after that did not finish it was not attempted"
		steps = partial
	case slow: // grow with one, shrink with the other: the set ends as built
		steps = []step{steps[0], steps[len(steps)-1]}
	}
	skip := map[string]bool{}
	for _, st := range steps {
		if skip[st.metric] {
			continue
		}
		i := set.UpdateTarget()
		before := &svcState{svc: set.Services[i], slice: set.Slices[i]}
		svc, slice := set.Updated(i, st.grow)
		set.Replace(i, svc, slice)
		t0 := time.Now()
		err := st.apply(set, i, before)
		d := time.Since(t0)
		var dnf *DNFError
		switch {
		case errors.As(err, &dnf):
			r.unfinished(st.metric, dnf.Timeout)
			skip[st.metric] = true
			set.Replace(i, before.svc, before.slice)
		case err != nil:
			return fmt.Errorf("update one service: %w", err)
		default:
			r.add(st.metric, float64(d)/1e6)
		}
	}
	return nil
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
