package main

import (
	"fmt"
	"net/http"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffnet/skiff/dns"
)

func init() { rootCmd.AddCommand(newDNSCmd()) }

func newDNSCmd() *cobra.Command {
	var (
		listen    []string
		zone      string
		upstreams []string
		pods      string
		ttl       uint32
		cacheSize int
		clientQPS float64
		metrics   string
	)
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Run the cluster DNS server alone (the node agent also hosts it); --kubeconfig selects the API server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := clientConfig()
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return fmt.Errorf("build API client: %w", err)
			}
			cfg := dns.Config{
				Client:    client,
				Zone:      zone,
				Listen:    listen,
				Pods:      dns.PodsMode(pods),
				TTL:       ttl,
				CacheSize: cacheSize,
				ClientQPS: clientQPS,
			}
			if cmd.Flags().Changed("upstream") {
				cfg.Upstreams = make([]string, 0, len(upstreams))
				for _, u := range upstreams {
					if u = strings.TrimSpace(u); u != "" {
						cfg.Upstreams = append(cfg.Upstreams, u)
					}
				}
			}
			srv, err := dns.New(cfg)
			if err != nil {
				return err
			}
			if metrics != "" {
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.Handler())
				go func() {
					if err := http.ListenAndServe(metrics, mux); err != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "metrics listener:", err)
					}
				}()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&listen, "listen", []string{":53"}, "ADDR:PORT to serve on UDP and TCP (repeat or comma-separate)")
	f.StringVar(&zone, "zone", "cluster.local", "cluster DNS zone")
	f.StringSliceVar(&upstreams, "upstream", nil, "upstream resolvers IP[:PORT],... for other names (default: nameservers of /etc/resolv.conf; empty disables forwarding)")
	f.StringVar(&pods, "pods", string(dns.PodsVerified), "pod A records a-b-c-d.ns.pod.ZONE: verified, insecure or disabled")
	f.Uint32Var(&ttl, "ttl", 5, "TTL of cluster records in seconds")
	f.IntVar(&cacheSize, "cache-size", 10000, "forwarding cache entries (negative disables)")
	f.Float64Var(&clientQPS, "client-qps", 0, "per-client-IP query limit per second, REFUSED above it (0 = off)")
	f.StringVar(&metrics, "metrics", "", "ADDR:PORT to serve Prometheus /metrics on (empty = off)")
	return cmd
}
