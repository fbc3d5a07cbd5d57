// Package localcluster runs a whole skiff cluster on one machine: the control plane in the
// host's network namespace and every node agent in a network namespace of its own, the
// namespaces joined by a bridge on the host, like kind but with network namespaces instead of
// containers.
package localcluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/skiffnet/skiff/datapath/netns"
)

// Network is the bridge and node namespaces of one local cluster. Node i (from 1) lives in
// netns "skiff-<cluster>-<i>" with eth0 = Subnet.(10+i), plugged into the host bridge whose
// address, Subnet.1, is where the API server listens.
type Network struct {
	Cluster string
	Subnet  *net.IPNet // a private /24 used only on this machine
	// Ranges are routed as unreachable on the host, so nothing from the host namespace ever
	// leaks towards the service or pod CIDRs.
	Ranges []*net.IPNet
}

// MaxNodes bounds a local cluster: node addresses are Subnet.11 to Subnet.(10+MaxNodes).
const MaxNodes = 200

// BridgeName is the host bridge of the cluster.
func (n *Network) BridgeName() string { return clip("skbr-" + n.Cluster) }

// NodeName is the name of node i, which is also its netns.
func (n *Network) NodeName(i int) string { return fmt.Sprintf("skiff-%s-%d", n.Cluster, i) }

// HostIP is the bridge's address: the API server's address as the nodes see it.
func (n *Network) HostIP() net.IP { return n.offset(1) }

// NodeIP is the address of node i.
func (n *Network) NodeIP(i int) net.IP { return n.offset(10 + i) }

func (n *Network) hostVeth(i int) string { return clip(fmt.Sprintf("skv%d-%s", i, n.Cluster)) }

func (n *Network) offset(k int) net.IP {
	ip := n.Subnet.IP.To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+byte(k)).To4()
}

func clip(s string) string {
	if len(s) > 15 {
		return s[:15]
	}
	return s
}

// EnsureBridge creates the host bridge (or adopts it if it matches) and the host's
// unreachable routes for the cluster ranges.
func (n *Network) EnsureBridge() error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	name := n.BridgeName()
	l, err := h.LinkByName(name)
	if err != nil {
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			return fmt.Errorf("look up bridge %s: %w", name, err)
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		if l, err = h.LinkByName(name); err != nil {
			return fmt.Errorf("look up bridge %s: %w", name, err)
		}
	} else if l.Type() != "bridge" {
		return fmt.Errorf("%s exists and is a %s, not a bridge: remove it (ip link del %s)", name, l.Type(), name)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.HostIP(), Mask: n.Subnet.Mask}}
	if err := h.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr.IPNet, name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	for _, r := range n.Ranges {
		if err := h.RouteReplace(&netlink.Route{Dst: r, Type: unix.RTN_UNREACHABLE}); err != nil {
			return fmt.Errorf("unreachable route for %s: %w", r, err)
		}
	}
	return nil
}

// EnsureNode creates node i's namespace with eth0 on the bridge, or repairs a leftover one.
func (n *Network) EnsureNode(i int) (*netns.NS, error) {
	ns, err := netns.Create(n.NodeName(i))
	if err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	hn, err := ns.Netlink()
	if err != nil {
		return nil, err
	}
	defer hn.Close()

	hostSide := n.hostVeth(i)
	if _, err := hn.LinkByName("eth0"); err != nil {
		// A host end without its peer is a leftover of a crash: start over.
		if old, err := h.LinkByName(hostSide); err == nil {
			h.LinkDel(old)
		}
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostSide}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.FD())}
		if err := h.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("veth for node %d: %w", i, err)
		}
	}
	hostLink, err := h.LinkByName(hostSide)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", hostSide, err)
	}
	br, err := h.LinkByName(n.BridgeName())
	if err != nil {
		return nil, fmt.Errorf("look up bridge: %w", err)
	}
	if err := h.LinkSetMaster(hostLink, br); err != nil {
		return nil, fmt.Errorf("plug %s into %s: %w", hostSide, br.Attrs().Name, err)
	}
	if err := h.LinkSetUp(hostLink); err != nil {
		return nil, fmt.Errorf("set %s up: %w", hostSide, err)
	}

	eth0, err := hn.LinkByName("eth0")
	if err != nil {
		return nil, fmt.Errorf("node %d eth0: %w", i, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.NodeIP(i), Mask: n.Subnet.Mask}}
	if err := hn.AddrReplace(eth0, addr); err != nil {
		return nil, fmt.Errorf("node %d address: %w", i, err)
	}
	if err := hn.LinkSetUp(eth0); err != nil {
		return nil, fmt.Errorf("node %d eth0 up: %w", i, err)
	}
	if err := hn.RouteReplace(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: n.HostIP()}); err != nil {
		return nil, fmt.Errorf("node %d default route: %w", i, err)
	}
	// Forwarding for pods, and no tx checksum offload on veths so checksum bugs show.
	if err := ns.Do(func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return err
		}
		return exec.Command("ethtool", "-K", "eth0", "tx", "off").Run()
	}); err != nil {
		return nil, fmt.Errorf("node %d sysctl/ethtool: %w", i, err)
	}
	if out, err := exec.Command("ethtool", "-K", hostSide, "tx", "off").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ethtool %s: %v: %s", hostSide, err, out)
	}
	return ns, nil
}

// Teardown removes every node namespace of the cluster, the bridge and the host routes.
// It removes whatever it finds, so it also cleans up after a crash.
func (n *Network) Teardown() error {
	var errs []error
	entries, _ := os.ReadDir(netns.Dir)
	prefix := fmt.Sprintf("skiff-%s-", n.Cluster)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := netns.Delete(e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer h.Close()
	// Removing a namespace removes its veth pairs; a host end whose peer was lost is removed here.
	names := []string{n.BridgeName()}
	for i := 1; i <= MaxNodes; i++ {
		names = append(names, n.hostVeth(i))
	}
	for _, name := range names {
		if l, err := h.LinkByName(name); err == nil {
			if err := h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
			}
		}
	}
	// The unreachable routes are the same for every local cluster: they stay while another
	// one is up, or its pod and service ranges would leak out of the host's default route.
	if !n.otherClusterUp(h) {
		for _, r := range n.Ranges {
			h.RouteDel(&netlink.Route{Dst: r, Type: unix.RTN_UNREACHABLE})
		}
	}
	return errors.Join(errs...)
}

// nodeNetnsPath is what nsenter takes to run a process inside node i.
func (n *Network) nodeNetnsPath(i int) string { return filepath.Join(netns.Dir, n.NodeName(i)) }

// otherClusterUp reports whether the bridge of another local cluster exists.
func (n *Network) otherClusterUp(h *netlink.Handle) bool {
	links, _ := h.LinkList()
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, "skbr-") && name != n.BridgeName() && l.Type() == "bridge" {
			return true
		}
	}
	return false
}
