package bench

import (
	"fmt"
	"strings"
)

// TargetCheck is one of issue 8's targets with what this run measured.
type TargetCheck struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Verdict  string `json:"verdict"` // met, MISSED, not measured
	Note     string `json:"note,omitempty"`
}

const (
	verdictMet    = "met"
	verdictMissed = "MISSED"
	verdictNone   = "not measured"
)

// spreadPct is a metric's run-to-run spread as a percentage of its median.
func spreadPct(r *Result, metric string) float64 {
	if r == nil || r.Metrics[metric] == nil || r.Metrics[metric].Median == 0 {
		return 0
	}
	s := r.Metrics[metric]
	return 100 * (s.Max - s.Min) / s.Median
}

// Targets evaluates the targets for the eBPF modes against what was measured.
func (rep *Report) Targets() []TargetCheck {
	var out []TargetCheck
	ebpf := []string{ModeEBPFSock, ModeEBPFTC}
	for _, m := range ebpf {
		// 1. request/response latency within 5% of direct at every N.
		t := TargetCheck{Target: m + ": persistent TCP p50 latency within 5% of direct at every N"}
		var parts, missed []string
		for _, n := range rep.ns() {
			v, ok1 := rep.Find(m, n, Last).Get("rr_p50_us")
			d, ok2 := rep.Find(ModeDirect, n, Last).Get("rr_p50_us")
			if !ok1 || !ok2 || d == 0 {
				continue
			}
			ratio := v / d
			parts = append(parts, fmt.Sprintf("N=%d %.3f×", n, ratio))
			if ratio > 1.05 {
				spread := "one run, no spread"
				if r := rep.Find(m, n, Last); r != nil && len(r.Metrics["rr_p50_us"].Runs) > 1 {
					spread = fmt.Sprintf("direct's run-to-run spread %.0f%%, %s's %.0f%%",
						spreadPct(rep.Find(ModeDirect, n, Last), "rr_p50_us"), m, spreadPct(r, "rr_p50_us"))
				}
				missed = append(missed, fmt.Sprintf("N=%d: %.1f µs vs direct %.1f µs (%s)", n, v, d, spread))
			}
		}
		t.Measured = strings.Join(parts, ", ")
		switch {
		case len(parts) == 0:
			t.Verdict, t.Note = verdictNone, "needs both "+m+" and direct results"
		case len(missed) > 0:
			t.Verdict = verdictMissed
			why := "the tc path costs a map lookup and a header rewrite per packet, in both directions"
			if m == ModeEBPFSock {
				why = "socket LB translates once in connect(), so packets of a persistent connection carry no translation cost at all"
			}
			t.Note = strings.Join(missed, "; ") + ". " + why + "; a gap within the runs' spread (the machine was shared) is noise, not cost."
		default:
			t.Verdict = verdictMet
		}
		out = append(out, t)

		// 2. new-connection rate at 10,000 services at least 2x iptables. The verdict is against
		// the iptables mode (the issue's: nft backend unless --iptables-backend says otherwise);
		// iptables-legacy is compared too and shown beside it.
		t = TargetCheck{Target: m + ": new-connection rate at 10,000 services ≥ 2× iptables"}
		v, okM := rep.Find(m, 10000, Last).Get("crr_rate")
		d, _ := rep.Find(ModeDirect, 10000, Last).Get("crr_rate")
		var measured, notes, unmeasured []string
		verdict := ""
		for _, ref := range []string{ModeIptables, ModeIptablesLegacy} {
			r := rep.Find(ref, 10000, Last)
			ipt, ok := r.Get("crr_rate")
			if !okM || !ok || ipt <= 0 {
				if r != nil {
					why := "no figure"
					if dnf := r.DNF("sync_full_ms"); dnf != "" {
						why = "its full sync did not finish in " + dnf
					}
					unmeasured = append(unmeasured, ref+": "+why)
				}
				continue
			}
			lo, hi := rep.ratioRange(m, ref, 10000, "crr_rate")
			measured = append(measured, fmt.Sprintf("%.0f/s vs %s %.0f/s = %.2f× (runs %.2f–%.2f×)", v, ref, ipt, v/ipt, lo, hi))
			if r.LoadedBy != "" {
				measured[len(measured)-1] += " [rules loaded untimed, see Did not finish]"
			}
			met := v/ipt >= 2
			if verdict == "" { // the first reference measured decides
				verdict = verdictMissed
				if met {
					verdict = verdictMet
				}
			}
			if met {
				continue
			}
			if d/ipt < 2 {
				notes = append(notes, fmt.Sprintf("vs %s: direct itself does %.0f/s, %.2f× %s: a new connection's cost is dominated by the TCP "+
					"handshake and the veth hops, so no proxy can reach 2× %s here", ref, d, d/ipt, ref, ref))
			} else {
				notes = append(notes, fmt.Sprintf("vs %s: direct does %.0f/s (%.2f× %s) and %s %.2f× direct: the per-connection work of %s "+
					"(plus the client, servers and kernel sharing 2 CPUs with other load) is what is left", ref, d, d/ipt, ref, m, v/d, m))
			}
		}
		t.Measured = strings.Join(measured, "; ")
		t.Note = strings.Join(notes, "; ")
		switch {
		case len(measured) == 0:
			t.Verdict, t.Note = verdictNone, "needs "+m+" and iptables at --services 10000"
			if len(unmeasured) > 0 {
				t.Note += " (" + strings.Join(unmeasured, "; ") + ")"
			}
		default:
			t.Verdict = verdict
			if len(unmeasured) > 0 {
				if t.Note != "" {
					t.Note += "; "
				}
				t.Note += "not compared: " + strings.Join(unmeasured, "; ")
			}
		}
		out = append(out, t)

		// 3. full sync of 10,000 x 10 under 1 s.
		t = TargetCheck{Target: m + ": full sync of 10,000 services × 10 backends < 1 s"}
		if r := rep.Find(m, 10000, Last); r != nil && r.B == 10 {
			if v, ok := r.Get("sync_full_ms"); ok {
				t.Measured = fmt.Sprintf("%.0f ms", v)
				t.Measured += rep.iptablesFigure(10000, "sync_full_ms", "")
				t.Verdict = verdictMet
				if v >= 1000 {
					t.Verdict, t.Note = verdictMissed, fmt.Sprintf("programming 10,000 frontends with their Maglev tables and "+
						"backends took %.1f s here; see the machine load in the header, and profile datapath.Sync on an idle machine", v/1000)
				}
			}
		}
		if t.Verdict == "" {
			t.Verdict, t.Note = verdictNone, "needs "+m+" at --services 10000 --backends 10"
		}
		out = append(out, t)

		// 4. one service update under 1 ms at any N.
		t = TargetCheck{Target: m + ": one-service update < 1 ms at every N"}
		parts, missed = nil, nil
		for _, n := range rep.ns() {
			v, ok := rep.Find(m, n, Last).Get("sync_update_ms")
			if !ok {
				continue
			}
			s := fmt.Sprintf("N=%d %.3f ms", n, v) + rep.iptablesFigure(n, "sync_update_ms", "sync_update_partial_ms")
			parts = append(parts, s)
			if v >= 1 {
				missed = append(missed, fmt.Sprintf("N=%d: %.2f ms", n, v))
			}
		}
		t.Measured = strings.Join(parts, ", ")
		switch {
		case len(parts) == 0:
			t.Verdict, t.Note = verdictNone, "needs "+m+" results"
		case len(missed) > 0:
			t.Verdict, t.Note = verdictMissed, strings.Join(missed, "; ")+": the update rewrites more than the changed service's entries"
		default:
			t.Verdict = verdictMet
		}
		out = append(out, t)
	}
	return out
}

// iptablesFigure is " (iptables X ms, iptables-legacy Y ms)" for a programming metric at n,
// with "did not finish in D" for a load that was killed, and the partial restore's figure
// after a "/" when partial names one; "" when nothing was measured.
func (rep *Report) iptablesFigure(n int, metric, partial string) string {
	var parts []string
	for _, ref := range []string{ModeIptables, ModeIptablesLegacy} {
		r := rep.Find(ref, n, Last)
		var s string
		if v, ok := r.Get(metric); ok {
			s = fmt.Sprintf("%s %.0f ms", ref, v)
		} else if d := r.DNFText(metric); d != "" {
			s = ref + " " + d
		} else {
			continue
		}
		if v, ok := r.Get(partial); ok && partial != "" {
			s += fmt.Sprintf(" whole / %.0f ms partial", v)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// ratioRange is the lowest and highest ratio of a's runs to b's for metric at n (worst run
// against best and back), the spread behind a ratio of medians.
func (rep *Report) ratioRange(a, b string, n int, metric string) (lo, hi float64) {
	ra, rb := rep.Find(a, n, Last), rep.Find(b, n, Last)
	if ra == nil || rb == nil || ra.Metrics[metric] == nil || rb.Metrics[metric] == nil || rb.Metrics[metric].Min <= 0 {
		return 0, 0
	}
	sa, sb := ra.Metrics[metric], rb.Metrics[metric]
	return sa.Min / sb.Max, sa.Max / sb.Min
}
