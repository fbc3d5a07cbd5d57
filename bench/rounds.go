package bench

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// The modes at one N are measured in interleaved rounds: every mode gets its own topology and
// cgroup, all of them stay up for the whole N, and each round programs every mode, then runs
// each kind of load for every mode in turn. On a shared machine the load drifts over minutes;
// run one mode's three runs after another's and the drift lands in the ratios between modes.
// Interleaved, every mode's run k sees about the same machine, and the medians compare like
// with like. A topology of its own also means nothing one mode leaves in the kernel taxes
// another: above all netfilter conntrack, which the legacy iptables nat table keeps hooked into
// a netns for as long as the netns lives.

// modeRun is one mode at one N while its rounds run.
type modeRun struct {
	name  string
	m     Mode
	topo  *Topology
	srv   *Servers
	cg    string
	hold  func() // ends the process that keeps cg populated
	env   *Env
	l     *Launcher
	byPos map[Position]*Result
	out   []*Result
	main  *Result // the measured service last: programming and memory go here
	slow  bool    // one sync took so long that later rounds reuse the loaded rules
	dnf   string  // the full sync was killed after this long (the rules came from LoadUntimed)
	setUp bool    // m.Setup succeeded, so Clear and Teardown are due
	err   error   // the mode failed; it sits out the remaining rounds
}

func (mr *modeRun) fail(err error) {
	if mr.err == nil {
		mr.err = err
	}
}

// runN measures the named modes at set.N and returns their results, failures included.
func runN(cfg Config, set *ServiceSet, names []string) []*Result {
	progress := func(mr *modeRun, format string, a ...any) {
		fmt.Fprintf(cfg.Progress, "[N=%d] %s: %s\n", set.N, mr.name, fmt.Sprintf(format, a...))
	}
	var runs []*modeRun
	defer func() {
		for _, mr := range runs {
			mr.close(progress)
		}
	}()
	for _, name := range names {
		mr := &modeRun{name: name, byPos: map[Position]*Result{}}
		for _, pos := range positions(name, set.N) {
			r := &Result{Mode: name, Position: pos, N: set.N, B: set.B, Metrics: map[string]*Stat{}}
			mr.byPos[pos] = r
			mr.out = append(mr.out, r)
		}
		mr.main = mr.byPos[Last]
		runs = append(runs, mr)
		if err := mr.open(cfg, set); err != nil {
			mr.fail(err)
			progress(mr, "FAILED: %v", err)
		}
	}
	live := func() []*modeRun {
		var out []*modeRun
		for _, mr := range runs {
			if mr.err == nil {
				out = append(out, mr)
			}
		}
		return out
	}
	check := func(mr *modeRun, err error) bool {
		if err != nil {
			mr.fail(err)
			progress(mr, "FAILED: %v", err)
			return false
		}
		return true
	}

	for run := 0; run < cfg.Runs && cfg.Ctx.Err() == nil; run++ {
		// 1. Programming from nothing (timed), and the memory it holds; then every mode proves
		// it reaches the right backends before anything is timed.
		// Rules kept from an earlier round are checked again too.
		programmed := map[*modeRun]bool{}
		for _, mr := range live() {
			if run == 0 || !mr.slow {
				programmed[mr] = true
				if !check(mr, mr.program(cfg, set, run, progress)) {
					continue
				}
			}
			for _, pos := range positions(mr.name, set.N) {
				if err := verifyMode(mr.l, mr.m, set, pos); err != nil {
					check(mr, fmt.Errorf("verify (service at %s): %w", pos, err))
					break
				}
			}
			if run == 0 && mr.err == nil {
				progress(mr, "verified: traffic reaches the %d backends of the measured service", set.B)
			}
		}
		if cfg.VerifyOnly {
			break
		}
		// 2. Traffic: each kind of load for every mode in turn.
		for _, kind := range []string{LoadRR, LoadCRR, LoadUDP, LoadStream} {
			for _, mr := range live() {
				for _, pos := range positions(mr.name, set.N) {
					if pos != Last && (kind == LoadUDP || kind == LoadStream) {
						continue
					}
					tcp, udp := Targets(mr.m, set, pos)
					spec := LoadSpec{Kind: kind, TCP: tcp, UDP: udp, Duration: cfg.Duration}
					if kind == LoadRR || kind == LoadStream {
						spec.TCP = tcp[run%len(tcp):][:1] // direct: a different backend each run
					}
					res, err := mr.l.Run(spec)
					if !check(mr, err) {
						break
					}
					mr.byPos[pos].addLoad(res)
				}
			}
		}
		// 3. One service changes at N: an endpoint added, then removed again, each timed.
		for _, mr := range live() {
			if mr.m.Translates() && programmed[mr] {
				check(mr, timeUpdates(mr.m, set, mr.main, mr.slow, mr.dnf))
				// Whatever happened, the next mode programs the set as built.
				i := set.UpdateTarget()
				svc, slice := set.Updated(i, false)
				set.Replace(i, svc, slice)
			}
		}
		for _, mr := range live() {
			progress(mr, "run %d/%d: %s", run+1, cfg.Runs, mr.main.summary())
		}
	}
	var out []*Result
	for _, mr := range runs {
		for _, r := range mr.out {
			if mr.err != nil && r.Error == "" {
				r.Error = mr.err.Error()
			}
			out = append(out, r)
		}
	}
	return out
}

// open builds the mode's topology, servers and cgroup and sets the mode up.
func (mr *modeRun) open(cfg Config, set *ServiceSet) error {
	topo, err := NewTopology(cfg.NetnsPrefix, cfg.Backends)
	if err != nil {
		return fmt.Errorf("build topology: %w", err)
	}
	mr.topo = topo
	if mr.srv, err = StartServers(topo.Backends); err != nil {
		return err
	}
	if mr.cg, err = CreateCgroup(cfg.CgroupRoot, cfg.CgroupPrefix+topo.ID); err != nil {
		return err
	}
	if mr.hold, err = HoldCgroup(mr.cg); err != nil {
		return err
	}
	mr.env = &Env{Topo: topo, Cgroup: mr.cg, PinPrefix: cfg.PinPrefix, IptablesBackend: cfg.IptablesBackend,
		CmdTimeout: cfg.RuleTimeout, Ctx: cfg.Ctx}
	mr.l = &Launcher{Exe: cfg.LoadgenExe, Args: cfg.LoadgenArgs, Client: topo.Client, Cgroup: mr.cg, Ctx: cfg.Ctx}
	if mr.m, err = NewMode(mr.name); err != nil {
		return err
	}
	if err := mr.m.Setup(mr.env, set.N, set.B); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	mr.setUp = true
	return nil
}

// program clears the mode and times a full sync of set; in the first run also the memory.
func (mr *modeRun) program(cfg Config, set *ServiceSet, run int, progress func(*modeRun, string, ...any)) error {
	m, main := mr.m, mr.main
	if err := m.Clear(); err != nil {
		return fmt.Errorf("clear: %w", err)
	}
	runtime.GC()
	slab0 := slabBytes()
	t0 := time.Now()
	if err := m.FullSync(set); err != nil {
		var dnf *DNFError
		if !errors.As(err, &dnf) {
			return fmt.Errorf("full sync of %d services: %w", set.N, err)
		}
		main.unfinished("sync_full_ms", dnf.Timeout)
		ul, ok := m.(untimedLoader)
		if !ok {
			return fmt.Errorf("full sync of %d services: %w", set.N, err)
		}
		// The packet path does not care how the rules got in: load them another way and
		// measure the traffic all the same.
		progress(mr, "full sync did not finish in %v; loading the same rules untimed another way to measure the traffic", dnf.Timeout)
		if err := m.Clear(); err != nil {
			return fmt.Errorf("clear: %w", err)
		}
		how, lerr := ul.LoadUntimed(set)
		if lerr != nil {
			return fmt.Errorf("full sync of %d services: %w; loading untimed instead: %v", set.N, err, lerr)
		}
		mr.slow, mr.dnf, main.LoadedBy = true, dnf.Timeout.String(), how
		return mr.memory(run, progress)
	}
	syncDur := time.Since(t0)
	if m.Translates() {
		main.add("sync_full_ms", float64(syncDur)/1e6)
		if run == 0 && slab0 > 0 {
			main.add("mem_kernel_kb", float64(slabBytes()-slab0)/1024)
		}
	}
	if syncDur > SlowSync && !mr.slow && cfg.Runs > 1 {
		mr.slow = true
		progress(mr, "full sync took %v: later runs reuse the loaded rules and time only the traffic", syncDur.Round(time.Millisecond))
	}
	return mr.memory(run, progress)
}

// memory records, in the first run, what the loaded rules or maps occupy.
func (mr *modeRun) memory(run int, progress func(*modeRun, string, ...any)) error {
	if run != 0 {
		return nil
	}
	if b, how, err := mr.m.Memory(); err == nil && how != "none" {
		mr.main.add("mem_rules_kb", float64(b)/1024)
		mr.main.MemoryHow = how
	} else if err != nil {
		progress(mr, "memory: %v", err)
	}
	return nil
}

// untimedLoader is a mode that can load its rules by a path other than the timed one.
type untimedLoader interface {
	LoadUntimed(set *ServiceSet) (how string, err error)
}

// close tears the mode down and removes its topology and cgroup.
func (mr *modeRun) close(progress func(*modeRun, string, ...any)) {
	if mr.setUp {
		if err := mr.m.Clear(); err != nil {
			progress(mr, "clear: %v", err)
		}
		if err := mr.m.Teardown(); err != nil {
			progress(mr, "teardown: %v", err)
		}
	}
	if mr.srv != nil {
		mr.srv.Close()
	}
	if mr.topo != nil {
		mr.topo.Close()
	}
	if mr.hold != nil {
		mr.hold()
	}
	if mr.cg != "" {
		if err := RemoveCgroup(mr.cg); err != nil {
			progress(mr, "%v", err)
		}
	}
}
