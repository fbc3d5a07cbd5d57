package bench

import (
	"crypto/rand"
	"encoding/hex"
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

// Topology is the bench's network: a client netns and B backend ("pod") netns, each joined by a
// veth pair to one node netns where the service proxy under test runs. Every mode uses the same
// topology; only the translation in the node (or, for ebpf-sock, in the client's cgroup) differs.
//
//	client eth0 10.244.255.2 ── cli0 10.244.255.1 ┐
//	                                    node netns ├─ podI 10.244.0.1/32 ── eth0 10.244.0.(I+2) backend I
type Topology struct {
	ID       string // random per run: in every netns and cgroup name
	Client   *netns.NS
	Node     *netns.NS
	Backends []*netns.NS
	// NodeLinks are the node-side veths: the client's first, then one per backend. The eBPF
	// per-packet mode attaches to all of them, as the agent does to every pod veth.
	NodeLinks []string
}

const clientLink = "cli0"

func podLink(i int) string { return fmt.Sprintf("pod%d", i) }

// RandomID is a short random hex string for names unique to one run.
func RandomID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewTopology builds the namespaces and links for b backends. prefix starts every netns name
// ("skb" by default). On error everything made so far is removed.
func NewTopology(prefix string, b int) (t *Topology, err error) {
	t = &Topology{ID: RandomID()}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	base := prefix + t.ID
	if t.Node, err = netns.Create(base + "n"); err != nil {
		return t, err
	}
	if t.Client, err = netns.Create(base + "c"); err != nil {
		return t, err
	}
	for i := 0; i < b; i++ {
		ns, err := netns.Create(fmt.Sprintf("%sb%d", base, i))
		if err != nil {
			return t, err
		}
		t.Backends = append(t.Backends, ns)
	}
	if err := t.Node.Do(func() error {
		return writeSysctls(map[string]string{
			"net/ipv4/ip_forward":             "1",
			"net/ipv4/conf/all/rp_filter":     "0",
			"net/ipv4/conf/default/rp_filter": "0",
			"net/ipv4/conf/all/accept_local":  "1",
		})
	}); err != nil {
		return t, fmt.Errorf("node sysctls: %w", err)
	}
	// Connection-per-request runs open tens of thousands of connections to one address: let the
	// client reuse TIME_WAIT ports and use the whole port range.
	if err := t.Client.Do(func() error {
		return writeSysctls(map[string]string{
			"net/ipv4/tcp_tw_reuse":        "1",
			"net/ipv4/ip_local_port_range": "1024 65000",
		})
	}); err != nil {
		return t, fmt.Errorf("client sysctls: %w", err)
	}

	if err := t.link(clientLink, t.Client,
		&net.IPNet{IP: clientGW, Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: clientIP, Mask: net.CIDRMask(24, 32)}, nil); err != nil {
		return t, err
	}
	t.NodeLinks = append(t.NodeLinks, clientLink)
	for i, ns := range t.Backends {
		if err := t.link(podLink(i), ns,
			&net.IPNet{IP: podGW, Mask: net.CIDRMask(32, 32)},
			&net.IPNet{IP: PodIP(i), Mask: net.CIDRMask(32, 32)}, PodIP(i)); err != nil {
			return t, err
		}
		t.NodeLinks = append(t.NodeLinks, podLink(i))
	}
	// The client reaches everything, the service CIDR included, through the node.
	if err := withHandle(t.Client, func(h *netlink.Handle) error {
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		_, svcNet, _ := net.ParseCIDR(ServiceCIDR)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: svcNet, Gw: clientGW}); err != nil {
			return fmt.Errorf("client route %s: %w", ServiceCIDR, err)
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: clientGW})
	}); err != nil {
		return t, err
	}
	// An untranslated service packet must die in the node, never wander (DESIGN.md).
	if err := withHandle(t.Node, func(h *netlink.Handle) error {
		_, svcNet, _ := net.ParseCIDR(ServiceCIDR)
		return h.RouteAdd(&netlink.Route{Dst: svcNet, Type: unix.RTN_UNREACHABLE})
	}); err != nil {
		return t, fmt.Errorf("node unreachable route: %w", err)
	}
	return t, nil
}

func withHandle(ns *netns.NS, fn func(*netlink.Handle) error) error {
	h, err := ns.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

// link makes a veth pair: nodeName in the node netns with nodeAddr, eth0 in peer with peerAddr.
// For a backend (podIP set) the addresses are /32s with explicit routes, as CNI plugins do.
func (t *Topology) link(nodeName string, peer *netns.NS, nodeAddr, peerAddr *net.IPNet, podIP net.IP) error {
	err := withHandle(t.Node, func(h *netlink.Handle) error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: nodeName, MTU: 1500},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(peer.FD()),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s: %w", nodeName, err)
		}
		l, err := h.LinkByName(nodeName)
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: nodeAddr}); err != nil {
			return fmt.Errorf("address %s on %s: %w", nodeAddr, nodeName, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		if podIP != nil {
			if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: podIP, Mask: net.CIDRMask(32, 32)},
				Scope: netlink.SCOPE_LINK, Src: podGW}); err != nil {
				return fmt.Errorf("route to %s: %w", podIP, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = withHandle(peer, func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: peerAddr}); err != nil {
			return fmt.Errorf("address %s in %s: %w", peerAddr, peer.Name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		if podIP != nil {
			if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: podGW, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}); err != nil {
				return fmt.Errorf("route to gateway in %s: %w", peer.Name, err)
			}
			return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: podGW})
		}
		return nil
	})
	if err != nil {
		return err
	}
	// veth has no checksum hardware: with tx offload on, packets rewritten by tc/netfilter can
	// leave with CHECKSUM_PARTIAL and be mangled on the way; every mode runs with it off.
	if err := ethtoolTxOff(t.Node, nodeName); err != nil {
		return err
	}
	return ethtoolTxOff(peer, "eth0")
}

func ethtoolTxOff(ns *netns.NS, dev string) error {
	return ns.Do(func() error {
		out, err := exec.Command("ethtool", "-K", dev, "tx", "off").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ethtool -K %s tx off in %s: %v: %s", dev, ns.Name, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// writeSysctls writes /proc/sys entries; /proc/sys/net resolves to the calling thread's netns,
// so inside ns.Do these are the namespace's own.
func writeSysctls(kv map[string]string) error {
	for k, v := range kv {
		p := filepath.Join("/proc/sys", k)
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// Close deletes every namespace, which removes the veths, routes and netfilter rules with them.
func (t *Topology) Close() error {
	var errs []error
	for _, ns := range append([]*netns.NS{t.Client, t.Node}, t.Backends...) {
		if ns != nil {
			if err := ns.Delete(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
