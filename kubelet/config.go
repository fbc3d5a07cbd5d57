// Package kubelet is skiff's node agent: it registers the node, keeps its Lease, runs the
// pods bound to it through containerd, wires their network, runs their probes, reports their
// status and serves their logs and exec to the API server.
package kubelet

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/skiffnet/skiff/datapath"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Datapath is the optional hook into the eBPF datapath: it attaches its programs to each pod's
// node-side veth. The agent runs without one (no service load balancing on this node).
type Datapath interface {
	AttachPod(ifname string) error
	DetachPod(ifname string) error
}

// Config configures the agent.
type Config struct {
	// Server is the API server URL and Token the cluster's join token (used once: the node
	// token from the join is kept in DataDir).
	Server   string
	Token    string
	NodeName string
	// DataDir keeps credentials, IPAM state, pod files and logs. Default /var/lib/skiff/agent/<node>.
	DataDir string
	// ContainerdSocket, default /run/skiff/containerd/containerd.sock.
	ContainerdSocket string
	// NodeIP is the node's InternalIP; empty = the first global IPv4 address of the node's netns.
	NodeIP string
	// NetNS, if set, is a named network namespace where the node's networking lives (pod
	// veths, probes, the agent API listener): how `skiff up` runs several nodes on one host.
	NetNS string
	// Listen is the agent API address, default ":10250".
	Listen string
	// ListenHostNS puts the agent API listener in the agent process's own network namespace
	// even with NetNS set (tests where the API server must reach it on loopback).
	ListenHostNS bool
	// PodCIDR is used when the Node has no spec.podCIDR (no node IPAM controller running);
	// the agent then sets it on its Node.
	PodCIDR string
	// ClusterDNS and ClusterDomain go into pods' /etc/resolv.conf.
	ClusterDNS    string
	ClusterDomain string
	// MTU of pod veths; lower it under an overlay.
	MTU int
	// MaxPods is the node's pod capacity, default 110.
	MaxPods int
	// Datapath, if set, gets every pod veth.
	Datapath Datapath
	// DatapathConfig, if set (and Datapath is not), makes the agent load the eBPF datapath in
	// the node's network namespace and run its service reconciler against the API.
	DatapathConfig *datapath.Config
	// Overlay makes the agent run the VXLAN overlay towards the other nodes once its Node has
	// a pod CIDR; pod veths should then use the underlay MTU less overlay.Overhead.
	Overlay bool
	// DNS makes the agent serve the cluster zone on NodeIP:53 and join the kube-dns Service.
	DNS bool
	// BackoffBase and BackoffMax bound container restart back-off (10s doubling up to 5m).
	BackoffBase, BackoffMax time.Duration
	// ProbeUnit is one probe "second"; only tests shorten it.
	ProbeUnit time.Duration
	// StatusInterval and LeaseInterval, default 10s.
	StatusInterval, LeaseInterval time.Duration
	// Client, if set, is used instead of joining (tests with a fake or admin client).
	Client kubernetes.Interface
	// Logger, default slog.Default().
	Logger *slog.Logger

	// trace, if set, hears each pod's startup steps (benchmarks).
	trace func(uid types.UID, step string, at time.Time)
}

func (c *Config) setDefaults() error {
	if c.NodeName == "" {
		return fmt.Errorf("node name is empty: set --node-name")
	}
	if c.DataDir == "" {
		c.DataDir = filepath.Join("/var/lib/skiff/agent", c.NodeName)
	}
	if c.ContainerdSocket == "" {
		c.ContainerdSocket = "/run/skiff/containerd/containerd.sock"
	}
	if c.Listen == "" {
		c.Listen = ":10250"
	}
	if c.ClusterDNS == "" {
		c.ClusterDNS = "10.96.0.10"
	}
	if net.ParseIP(c.ClusterDNS) == nil {
		return fmt.Errorf("cluster DNS %q is not an IP address", c.ClusterDNS)
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.NodeIP != "" && net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("node IP %q is not an IP address: set --node-ip to this node's address", c.NodeIP)
	}
	if c.PodCIDR != "" {
		if _, _, err := net.ParseCIDR(c.PodCIDR); err != nil {
			return fmt.Errorf("pod CIDR %q: %v", c.PodCIDR, err)
		}
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 10 * time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.ProbeUnit == 0 {
		c.ProbeUnit = time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.LeaseInterval == 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Client == nil && (c.Server == "" || c.Token == "") {
		return fmt.Errorf("no API server: set --server URL and --token (the cluster's join token)")
	}
	return nil
}
