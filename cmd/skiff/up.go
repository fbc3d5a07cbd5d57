package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/localcluster"
)

func init() {
	rootCmd.AddCommand(newUpCmd(), newDownCmd())
}

func localClusterFlags(cmd *cobra.Command, o *localcluster.Options) {
	f := cmd.Flags()
	f.StringVar(&o.Cluster, "name", "skiff", "cluster name (at most 8 characters); node namespaces are skiff-NAME-I")
	f.StringVar(&o.DataDir, "data-dir", "", "where the cluster keeps its state (default /var/lib/skiff/NAME)")
	f.StringVar(&o.ContainerdSocket, "containerd-socket", "/run/skiff/containerd/containerd.sock", "containerd's socket (shared by all nodes)")
	f.StringVar(&o.Subnet, "subnet", "172.30.0.0/24", "private /24 for the node network on the host bridge")
}

func newUpCmd() *cobra.Command {
	o := localcluster.Options{Out: os.Stdout}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local cluster: the control plane and N node agents, each node in its own network namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return localcluster.Up(ctx, o)
		},
	}
	localClusterFlags(cmd, &o)
	cmd.Flags().IntVar(&o.Nodes, "nodes", 3, "number of nodes")
	cmd.Flags().StringVar(&o.ServiceCIDR, "service-cidr", "10.96.0.0/12", "Service ClusterIP range")
	cmd.Flags().StringVar(&o.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "pod range (a /24 per node)")
	return cmd
}

func newDownCmd() *cobra.Command {
	o := localcluster.Options{Out: os.Stdout}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop a local cluster and remove its namespaces, links, routes, containers and pinned BPF state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return localcluster.Down(cmd.Context(), o)
		},
	}
	localClusterFlags(cmd, &o)
	return cmd
}
