package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is a mode at a position: the measured service's place only matters for iptables.
type series struct {
	Mode string
	Pos  Position
}

func (s series) String() string {
	if iptablesFamily(s.Mode) {
		return s.Mode + " (svc " + string(s.Pos) + ")"
	}
	return s.Mode
}

// refs are the modes every figure is also given as a ratio to, with their tags.
var refs = []struct{ mode, tag string }{{ModeDirect, "d"}, {ModeIptables, "i"}, {ModeIptablesLegacy, "l"}}

func (rep *Report) series() []series {
	var out []series
	for _, m := range AllModes {
		for _, pos := range []Position{Last, First} {
			for _, r := range rep.Results {
				if r.Mode == m && r.Position == pos {
					out = append(out, series{m, pos})
					break
				}
			}
		}
	}
	return out
}

func (rep *Report) ns() []int {
	var out []int
	for _, r := range rep.Results {
		if !slices.Contains(out, r.N) {
			out = append(out, r.N)
		}
	}
	slices.Sort(out)
	return out
}

// WriteDir writes report.md, report.json and the plots into dir.
func (rep *Report) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create --out %s: %w", dir, err)
	}
	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), j, 0o644); err != nil {
		return err
	}
	var plots []string
	for _, pl := range []struct {
		metric, file, ylabel string
		logY                 bool
	}{
		{"rr_p50_us", "rr_latency_p50.png", "persistent TCP p50 latency (µs)", false},
		{"rr_p99_us", "rr_latency_p99.png", "persistent TCP p99 latency (µs)", false},
		{"crr_rate", "crr_rate.png", "new connections per second", false},
		{"crr_p50_us", "crr_latency_p50.png", "new connection p50 latency (µs)", false},
		{"sync_full_ms", "sync_full.png", "full sync of N services (ms)", true},
	} {
		ok, err := rep.plot(pl.metric, pl.ylabel, filepath.Join(dir, pl.file), pl.logY)
		if err != nil {
			return fmt.Errorf("plot %s: %w", pl.file, err)
		}
		if ok {
			plots = append(plots, pl.file)
		}
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(rep.Markdown(plots)), 0o644)
}

func fmtVal(v float64) string {
	if v < 0 {
		return "-" + fmtVal(-v)
	}
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func fmtRatio(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.2g", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// dnfNote explains rule loads that were killed at their deadline, with the sync times the
// same mode took at smaller N, so the growth is there to see.
func (rep *Report) dnfNote() string {
	var lines []string
	for _, r := range rep.Results {
		if r.Position != Last || len(r.Unfinished) == 0 {
			continue
		}
		for metric, d := range r.Unfinished {
			var curve []string
			for _, n := range rep.ns() {
				if v, ok := rep.Find(r.Mode, n, Last).Get(metric); ok {
					curve = append(curve, fmt.Sprintf("N=%d %s ms", n, fmtVal(v)))
				}
			}
			line := fmt.Sprintf("- %s at N=%d: %s did not finish in %s and was killed", r.Mode, r.N, metric, d)
			if metric == "sync_update_ms" && r.UpdateNote != "" {
				line = fmt.Sprintf("- %s at N=%d: %s not attempted: %s", r.Mode, r.N, metric, r.UpdateNote)
			}
			if len(curve) > 0 {
				line += " (the same mode took " + strings.Join(curve, ", ") + ")"
			}
			lines = append(lines, line+".")
		}
		if r.LoadedBy != "" {
			lines = append(lines, fmt.Sprintf("- %s at N=%d: its traffic figures were measured on %s.", r.Mode, r.N, r.LoadedBy))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	slices.Sort(lines)
	return "## Did not finish\n\n" + strings.Join(lines, "\n") + "\n\n" +
		"iptables-nft-restore (iptables 1.8.x) spends this time in user space, not in the kernel: before it sends anything " +
		"it collects every chain the input names into a sorted linked list (nft-cache.c, cache_chain_list_insert), one " +
		"strcmp walk per rule, so a kube-proxy table of C chains and R rules costs O(R × C) — about N² — while " +
		"iptables-legacy-restore loads the same input in seconds. kube-proxy's real input triggers it as is; nothing in " +
		"the rules can be changed to avoid it without ceasing to be kube-proxy's. Measured on this machine: see bench/README.md.\n"
}

// ReadReport loads a report.json written by WriteDir, to render it again.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	if err := json.Unmarshal(b, rep); err != nil {
		return nil, fmt.Errorf("%s is not a bench report: %w", path, err)
	}
	return rep, nil
}

// Markdown renders the report: targets first, then one table per metric with a column per N.
func (rep *Report) Markdown(plots []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# skiff datapath benchmark\n\n")
	fmt.Fprintf(&b, "%s, kernel %s, %d CPUs (%s). N = %v services x %d backends, %s per measurement, %d runs (median, [min-max]), iptables backend %s.\n\n",
		rep.Started.Format("2006-01-02 15:04 UTC"), rep.Host.Kernel, rep.Host.CPUs, rep.Host.Model,
		rep.Config.Services, rep.Config.Backends, rep.Config.Duration, rep.Config.Runs, rep.Config.IptablesBackend)
	if rep.Host.Iptables != "" {
		fmt.Fprintf(&b, "%s; nft %s. Mode `iptables` loads through iptables-%s-restore, `iptables-legacy` through iptables-legacy-restore.\n\n",
			rep.Host.Iptables, rep.Host.Nft, rep.Config.IptablesBackend)
	}
	if rep.Host.LoadStart != "" {
		fmt.Fprintf(&b, "Load average at start %s, at end %s (other work on the machine shows up as spread).\n\n", rep.Host.LoadStart, rep.Host.LoadEnd)
	}
	b.WriteString("Client, node and backend pods are network namespaces joined by veths (tx checksum offload off); " +
		"the load generator is a child process in the client netns and in a child cgroup; one connection or stream at a time. " +
		"Every mode runs in a topology built for it alone, so no mode inherits another's kernel state (conntrack above all). " +
		"Ratios: `×d` = value / direct, `×i` = value / iptables and `×l` = value / iptables-legacy, both with the measured service last in KUBE-SERVICES.\n\n")

	b.WriteString("## Targets\n\n")
	targets := rep.Targets()
	b.WriteString("| target | measured | verdict |\n|---|---|---|\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.Target, t.Measured, t.Verdict)
	}
	var notes []string
	for _, t := range targets {
		if t.Note != "" {
			notes = append(notes, "- "+t.Target+": "+t.Note)
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nWhy targets were missed or not measured:\n\n" + strings.Join(notes, "\n") + "\n")
	}

	var failed []string
	for _, r := range rep.Results {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("- %s at N=%d: %s", series{r.Mode, r.Position}, r.N, r.Error))
		}
	}
	if len(failed) > 0 {
		b.WriteString("\n## Failures\n\n" + strings.Join(failed, "\n") + "\n")
	}
	if note := rep.dnfNote(); note != "" {
		b.WriteString("\n" + note + "\n")
	}

	ns := rep.ns()
	for _, mi := range metricInfo {
		var rows []string
		for _, s := range rep.series() {
			cells := []string{s.String()}
			any := false
			for _, n := range ns {
				r := rep.Find(s.Mode, n, s.Pos)
				st := (*Stat)(nil)
				if r != nil && r.Metrics != nil {
					st = r.Metrics[mi.Name]
				}
				if st == nil {
					if d := r.DNFText(mi.Name); d != "" {
						cells = append(cells, d)
						any = true
					} else {
						cells = append(cells, "–")
					}
					continue
				}
				any = true
				cell := fmtVal(st.Median)
				if len(st.Runs) > 1 {
					cell += fmt.Sprintf(" [%s–%s]", fmtVal(st.Min), fmtVal(st.Max))
				}
				for _, ref := range refs {
					if ref.mode == s.Mode {
						continue
					}
					if v, ok := rep.Find(ref.mode, n, Last).Get(mi.Name); ok && v > 0 && st.Median > 0 {
						cell += " " + fmtRatio(st.Median/v) + "×" + ref.tag
					}
				}
				cells = append(cells, cell)
			}
			if any {
				rows = append(rows, "| "+strings.Join(cells, " | ")+" |")
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### %s (%s)\n\n| mode |", mi.Title, mi.Unit)
		for _, n := range ns {
			fmt.Fprintf(&b, " N=%d |", n)
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(ns)) + "\n")
		b.WriteString(strings.Join(rows, "\n") + "\n")
		if mi.Name == "mem_rules_kb" {
			b.WriteString("\nHow: ")
			var hows []string
			for _, s := range rep.series() {
				for _, r := range rep.Results {
					if r.Mode == s.Mode && r.MemoryHow != "" {
						hows = append(hows, s.Mode+" = "+r.MemoryHow)
						break
					}
				}
			}
			b.WriteString(strings.Join(slices.Compact(hows), "; ") + ".\n")
		}
	}
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n", p, p)
		}
	}
	return b.String()
}

var palette = []color.Color{
	color.RGBA{0, 0, 0, 255}, color.RGBA{31, 119, 180, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{148, 103, 189, 255},
	color.RGBA{140, 86, 75, 255}, color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255},
	color.RGBA{188, 189, 34, 255},
}

// plot draws metric against N, a line per series; false when nothing has the metric.
func (rep *Report) plot(metric, ylabel, file string, logY bool) (bool, error) {
	p := plot.New()
	p.Title.Text = ylabel + " vs services"
	p.X.Label.Text = "services (N)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	// Bottom right: the lines of rates and latencies run high on an axis from 0.
	p.Legend.Top, p.Legend.Left = false, false
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Legend.Top = true // programming times grow with N: the top left is empty
		p.Legend.Left = true
	}
	drawn := false
	for i, s := range rep.series() {
		var xys plotter.XYs
		for _, n := range rep.ns() {
			if v, ok := rep.Find(s.Mode, n, s.Pos).Get(metric); ok && v > 0 {
				xys = append(xys, plotter.XY{X: float64(n), Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return false, err
		}
		c := palette[i%len(palette)]
		line.Color, points.Color = c, c
		line.Width = vg.Points(1.5)
		points.Shape = draw.CircleGlyph{}
		if s.Pos == First {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(line, points)
		p.Legend.Add(s.String(), line, points)
		drawn = true
	}
	if !drawn {
		return false, nil
	}
	if p.X.Min == p.X.Max { // one N: give the log axis some room
		p.X.Min, p.X.Max = p.X.Min/2, p.X.Max*2
	}
	if !logY {
		p.Y.Min = 0
	}
	return true, p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}
