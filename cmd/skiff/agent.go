package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/datapath"
	"github.com/skiffnet/skiff/kubelet"
)

func init() { rootCmd.AddCommand(newAgentCmd()) }

func newAgentCmd() *cobra.Command {
	var cfg kubelet.Config
	var withDatapath bool
	var dpc datapath.Config
	var devices, legacyDevices, legacyCgroup string
	cmd := &cobra.Command{
		Use:   "agent --server URL --token T --node-name N",
		Short: "Run the node agent: register this machine as a node and run its pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.Overlay && !cmd.Flags().Changed("mtu") {
				cfg.MTU = 1450 // VXLAN's 50 bytes of headers come out of the pods' MTU
			}
			if withDatapath {
				if legacyDevices != "" {
					devices = legacyDevices
				}
				switch devices {
				case "none", "":
				default:
					dpc.Devices = strings.Split(devices, ",")
				}
				if legacyCgroup != "" {
					dpc.CgroupPath = legacyCgroup
				}
				cfg.DatapathConfig = &dpc
			}
			return kubelet.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", "", "API server URL (https://HOST:6443)")
	f.StringVar(&cfg.Token, "token", "", "the cluster's join token (used once; the node token is kept in --data-dir)")
	f.StringVar(&cfg.NodeName, "node-name", "", "this node's name")
	f.StringVar(&cfg.DataDir, "data-dir", "", "agent state: credentials, IPAM, pod files and logs (default /var/lib/skiff/agent/NODE)")
	f.StringVar(&cfg.ContainerdSocket, "containerd-socket", "/run/skiff/containerd/containerd.sock", "containerd's socket")
	f.StringVar(&cfg.NodeIP, "node-ip", "", "the node's InternalIP (default: the first global IPv4 address)")
	f.StringVar(&cfg.NetNS, "netns", "", "named network namespace holding the node's networking (used by skiff up)")
	f.StringVar(&cfg.Listen, "listen", ":10250", "agent API (logs, exec) listen address")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", "", "pod CIDR to claim if the Node has none assigned")
	f.StringVar(&cfg.ClusterDNS, "cluster-dns", "10.96.0.10", "cluster DNS IP for pods' resolv.conf")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "cluster DNS zone")
	f.IntVar(&cfg.MTU, "mtu", 1500, "pod veth MTU (1450 with --overlay unless set)")
	f.IntVar(&cfg.MaxPods, "max-pods", 110, "pod capacity of the node")
	// The agent is a whole node by default, as in k3s: service load balancing, the overlay and
	// the cluster DNS run in this one process. Turn a part off with --datapath=false etc.
	f.BoolVar(&withDatapath, "datapath", true, "load the eBPF service load balancer (needs bpffs; mounted if missing)")
	f.StringVar(&dpc.PinDir, "bpf-pin-dir", "/sys/fs/bpf/skiff", "where the datapath pins its maps and links")
	f.StringVar(&dpc.ServiceCIDR, "service-cidr", "10.96.0.0/12", "service CIDR (gets an unreachable route)")
	f.StringVar(&devices, "devices", datapath.DevicesAuto, `comma-separated devices for the NodePort programs: "auto" = the default route's device, "none" = no NodePort`)
	f.StringVar(&dpc.CgroupPath, "cgroup-root", "", "cgroup2 directory for socket load balancing of the node's own processes (empty = off; never the cgroup2 root)")
	f.BoolVar(&cfg.Overlay, "overlay", true, "connect this node's pods to other nodes' over VXLAN (UDP 8472); lower --mtu by 50")
	f.BoolVar(&cfg.DNS, "dns", true, "serve the cluster DNS on NODE-IP:53 and join the kube-dns Service")
	// Names used before 0.1; kept so old scripts keep working.
	f.StringVar(&legacyDevices, "nodeport-devices", "", "")
	f.StringVar(&legacyCgroup, "socket-lb-cgroup", "", "")
	f.MarkDeprecated("nodeport-devices", "use --devices")
	f.MarkDeprecated("socket-lb-cgroup", "use --cgroup-root")
	return cmd
}
