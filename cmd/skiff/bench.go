package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/bench"
)

func init() { rootCmd.AddCommand(newBenchCmd()) }

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks: the service datapath against kube-proxy, DNS, the control plane",
	}
	cmd.AddCommand(newBenchDatapathCmd(), newBenchDNSCmd(), newBenchControlPlaneCmd(), newBenchLoadgenCmd())
	return cmd
}

func newBenchDatapathCmd() *cobra.Command {
	var (
		modes, services string
		cfg             bench.Config
		out, fromJSON   string
	)
	cmd := &cobra.Command{
		Use:   "datapath",
		Short: "Compare direct, ebpf-tc, ebpf-sock, iptables (nft and legacy) and nftables service translation side by side",
		Long: `Builds network namespaces (client, node, backend pods) for each mode, programs N services x B
backends and measures request/response latency, new connections, UDP, throughput, CPU,
programming time and rule/map memory. Needs root, bpffs and cgroup2.

A rule load (iptables-restore, nft -f) that takes longer than --rule-timeout is killed and
reported as "did not finish"; iptables-nft-restore needs far longer than that for kube-proxy's
table at 10,000 services, which is why iptables-legacy is measured as well.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if fromJSON != "" { // re-render an earlier run's report
				rep, err := bench.ReadReport(fromJSON)
				if err != nil {
					return err
				}
				if out == "" {
					fmt.Print(rep.Markdown(nil))
					return nil
				}
				return rep.WriteDir(out)
			}
			if modes != "" {
				cfg.Modes = strings.Split(modes, ",")
			}
			for _, s := range strings.Split(services, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil {
					return fmt.Errorf("--services %q: want a comma-separated list of numbers, e.g. 1,1000,10000", services)
				}
				cfg.Services = append(cfg.Services, n)
			}
			cfg.LoadgenArgs = []string{"bench", "loadgen"}
			cfg.Progress = os.Stderr
			// The datapath logs at info on every load; the progress lines are the console here.
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Ctx = ctx
			rep, err := bench.Run(cfg)
			if err != nil {
				return err
			}
			if out != "" {
				if err := rep.WriteDir(out); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "wrote %s/report.md, report.json and plots\n", out)
			} else {
				fmt.Print(rep.Markdown(nil))
			}
			for _, r := range rep.Results {
				if r.Error != "" {
					return &exitError{code: 2, err: fmt.Errorf("some modes failed (see the report's Failures)")}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modes, "modes", "", "comma-separated modes (default all: "+strings.Join(bench.AllModes, ",")+")")
	f.StringVar(&services, "services", "1,1000,10000", "service counts N to measure")
	f.IntVar(&cfg.Backends, "backends", 10, "backends per service (each a netns with real servers)")
	f.DurationVar(&cfg.Duration, "duration", 5*time.Second, "length of each measurement")
	f.IntVar(&cfg.Runs, "runs", 3, "runs per mode and N (the report gives median and spread)")
	f.StringVar(&out, "out", "", "directory for report.md, report.json and PNG plots")
	f.StringVar(&cfg.IptablesBackend, "iptables-backend", "nft", "backend of the iptables mode: nft or legacy (the iptables-legacy mode is always legacy)")
	f.StringVar(&fromJSON, "from-json", "", "render report.md and plots again from an earlier report.json (with --out)")
	f.IntVar(&cfg.MaxRuleServices, "max-rule-services", 10000, "largest N for the iptables and nftables modes")
	f.DurationVar(&cfg.RuleTimeout, "rule-timeout", bench.DefaultCmdTimeout, "kill one iptables-restore or nft load after this long and report it as not finished")
	return cmd
}

// newBenchLoadgenCmd is the hidden child the datapath bench re-runs for its load generator.
func newBenchLoadgenCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "loadgen",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Getenv(bench.LoadgenEnv) != "1" {
				return fmt.Errorf("skiff bench loadgen is internal to skiff bench datapath")
			}
			if code := bench.LoadgenMain(os.Stdin, os.Stdout); code != 0 {
				return &exitError{code: code, err: fmt.Errorf("load generator failed")}
			}
			return nil
		},
	}
}

func newBenchDNSCmd() *cobra.Command {
	var cfg bench.DNSConfig
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "QPS and latency of skiff's DNS for cluster names (--peer: another server side by side)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Progress = os.Stderr
			out, err := bench.RunDNS(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Print(out)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.Peer, "peer", "", "ADDR:PORT of another DNS server serving the same records")
	cmd.Flags().DurationVar(&cfg.Duration, "duration", 5*time.Second, "length of the measurement per server")
	cmd.Flags().IntVar(&cfg.Services, "services", 1000, "services in the cluster (10 endpoints each)")
	cmd.Flags().IntVar(&cfg.Workers, "workers", 4, "parallel clients for the QPS figure")
	return cmd
}

func newBenchControlPlaneCmd() *cobra.Command {
	var cfg bench.ControlPlaneConfig
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "API create/list latency, scheduler pods/s and network programming latency",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Progress = os.Stderr
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			out, err := bench.RunControlPlane(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Print(out)
			return nil
		},
	}
	cmd.Flags().IntVar(&cfg.Objects, "objects", 1000, "ConfigMaps to create and list")
	cmd.Flags().IntVar(&cfg.Pods, "pods", 500, "pods for the scheduler to bind")
	cmd.Flags().IntVar(&cfg.Nodes, "nodes", 3, "fake nodes (and simulated datapath nodes, at most 4)")
	cmd.Flags().IntVar(&cfg.Changes, "changes", 20, "Service changes timed from the API to every node's maps")
	return cmd
}
