// Package podnet gives each pod its network: a named network namespace, a veth pair whose
// node side is named after the pod, an address from the node's pod CIDR and the routes
// between them.
//
// Addressing: the pod's eth0 holds POD_IP/32 with a default route via the CIDR's first
// address (the gateway), which every node-side veth also holds as a /32, so the node answers
// the pod's ARP for it. The node routes POD_IP/32 to the pod's veth. Pods on one node talk
// through the node's routing table, where the datapath's tcx programs see every packet.
package podnet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config configures pod networking on a node.
type Config struct {
	// StateDir keeps the IPAM state.
	StateDir string
	// HostNS is the node's network namespace (where the node-side veths go); nil means the
	// agent's own.
	HostNS *netns.NS
	// MTU of the veths; 0 = 1500. Lower it for an overlay (VXLAN needs 50 bytes).
	MTU int
}

// Pod is a pod's network as set up.
type Pod struct {
	NetNS     string // netns name under /run/netns
	NetNSPath string
	HostVeth  string
	IP        netip.Addr
	Gateway   netip.Addr
}

// Manager sets up and tears down pod networks.
type Manager struct {
	cfg  Config
	mu   sync.Mutex
	ipam *IPAM
}

// New makes a manager; SetPodCIDR must be called before Setup.
func New(cfg Config) (*Manager, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU < 576 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("podnet MTU %d: must be between 576 and 65535", cfg.MTU)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("podnet state dir: %w", err)
	}
	return &Manager{cfg: cfg}, nil
}

// SetPodCIDR sets the node's pod CIDR (Node.spec.podCIDR) and prepares the node's
// namespace for routing pods.
func (m *Manager) SetPodCIDR(cidr string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ipam != nil && m.ipam.Prefix().String() == cidr {
		return nil
	}
	ipam, err := NewIPAM(filepath.Join(m.cfg.StateDir, "ipam"), cidr)
	if err != nil {
		return err
	}
	if err := m.inHost(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}
	m.ipam = ipam
	return nil
}

// PodCIDR is the CIDR in use, or "" before SetPodCIDR.
func (m *Manager) PodCIDR() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ipam == nil {
		return ""
	}
	return m.ipam.Prefix().String()
}

// IPAM is the allocator, nil before SetPodCIDR.
func (m *Manager) IPAM() *IPAM {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ipam
}

// HostVethName is the node-side veth of pod namespace/name: "sk" + 11 hex chars of a hash,
// so other parts (the datapath) can compute it too.
func HostVethName(namespace, name string) string {
	h := sha256.Sum256([]byte(namespace + "/" + name))
	return "sk" + hex.EncodeToString(h[:])[:11]
}

// NetNSName is the network namespace of the pod with this UID.
func NetNSName(uid string) string {
	h := sha256.Sum256([]byte(uid))
	return "skp-" + hex.EncodeToString(h[:])[:12]
}

func owner(namespace, name, uid string) string { return uid + " " + namespace + "/" + name }

func (m *Manager) inHost(fn func() error) error {
	if m.cfg.HostNS == nil {
		return fn()
	}
	return m.cfg.HostNS.Do(fn)
}

func (m *Manager) hostHandle() (*netlink.Handle, error) {
	if m.cfg.HostNS == nil {
		return netlink.NewHandle()
	}
	return m.cfg.HostNS.Netlink()
}

// Setup creates (or finds) the pod's namespace, veth, address and routes. It is idempotent:
// an agent that restarts gets the same answer for a pod that is already set up.
func (m *Manager) Setup(namespace, name, uid string) (*Pod, error) {
	ipam := m.IPAM()
	if ipam == nil {
		return nil, fmt.Errorf("node has no pod CIDR yet (Node.spec.podCIDR is empty)")
	}
	ip, err := ipam.Allocate(owner(namespace, name, uid))
	if err != nil {
		return nil, err
	}
	p := &Pod{NetNS: NetNSName(uid), HostVeth: HostVethName(namespace, name), IP: ip, Gateway: ipam.Gateway()}
	p.NetNSPath = filepath.Join(netns.Dir, p.NetNS)
	if err := m.setup(p); err != nil {
		return nil, fmt.Errorf("network for pod %s/%s: %w", namespace, name, err)
	}
	return p, nil
}

func (m *Manager) setup(p *Pod) error {
	pns, err := netns.Create(p.NetNS)
	if err != nil {
		return err
	}
	defer pns.Close()
	hh, err := m.hostHandle()
	if err != nil {
		return err
	}
	defer hh.Close()
	ph, err := pns.Netlink()
	if err != nil {
		return err
	}
	defer ph.Close()

	host, err := hh.LinkByName(p.HostVeth)
	if err == nil {
		// An existing veth must lead into this pod's namespace; else it is a leftover of an
		// earlier pod with the same name.
		if _, perr := ph.LinkByName("eth0"); perr != nil {
			hh.LinkDel(host)
			host = nil
		}
	} else {
		host = nil
	}
	if host == nil {
		if old, err := ph.LinkByName("eth0"); err == nil {
			ph.LinkDel(old)
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: p.HostVeth, MTU: m.cfg.MTU},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(pns.FD()),
		}
		if err := hh.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s: %w", p.HostVeth, err)
		}
		if host, err = hh.LinkByName(p.HostVeth); err != nil {
			return fmt.Errorf("find veth %s: %w", p.HostVeth, err)
		}
	}
	gw := &net.IPNet{IP: toIP(p.Gateway), Mask: net.CIDRMask(32, 32)}
	podAddr := &net.IPNet{IP: toIP(p.IP), Mask: net.CIDRMask(32, 32)}

	// Pod side.
	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("pod eth0: %w", err)
	}
	if err := ph.AddrReplace(eth0, &netlink.Addr{IPNet: podAddr}); err != nil {
		return fmt.Errorf("address %s on pod eth0: %w", p.IP, err)
	}
	if err := ph.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("pod eth0 up: %w", err)
	}
	if err := ph.RouteReplace(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: gw, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("pod route to gateway: %w", err)
	}
	if err := ph.RouteReplace(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.IP, Src: podAddr.IP}); err != nil {
		return fmt.Errorf("pod default route: %w", err)
	}

	// Node side.
	if err := hh.AddrReplace(host, &netlink.Addr{IPNet: gw, Scope: unix.RT_SCOPE_HOST}); err != nil {
		return fmt.Errorf("gateway address on %s: %w", p.HostVeth, err)
	}
	if err := hh.LinkSetUp(host); err != nil {
		return fmt.Errorf("%s up: %w", p.HostVeth, err)
	}
	if err := hh.RouteReplace(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: podAddr, Scope: netlink.SCOPE_LINK, Src: gw.IP}); err != nil {
		return fmt.Errorf("route to pod %s: %w", p.IP, err)
	}
	return nil
}

// Teardown removes the pod's veth and namespace and frees its address. Missing parts are fine.
// The veth goes with the pod's namespace: deleting eth0 there deletes its node-side peer, and
// a newer pod that reuses the name (and so the node-side name) is left alone.
func (m *Manager) Teardown(namespace, name, uid string) error {
	var errs []error
	if pns, err := netns.Open(NetNSName(uid)); err == nil {
		if ph, err := pns.Netlink(); err == nil {
			if peer, err := ph.LinkByName("eth0"); err == nil {
				if err := ph.LinkDel(peer); err != nil {
					errs = append(errs, fmt.Errorf("delete veth of %s/%s: %w", namespace, name, err))
				}
			}
			ph.Close()
		}
		pns.Close()
	}
	if err := netns.Delete(NetNSName(uid)); err != nil {
		errs = append(errs, err)
	}
	if ipam := m.IPAM(); ipam != nil {
		if err := ipam.Release(owner(namespace, name, uid)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Owners lists the pod UIDs that hold an address, for garbage collection after a restart.
func (m *Manager) Owners() map[string]string {
	out := map[string]string{}
	ipam := m.IPAM()
	if ipam == nil {
		return out
	}
	all, _ := ipam.Allocations()
	for _, o := range all {
		var uid, key string
		fmt.Sscanf(o, "%s %s", &uid, &key)
		out[uid] = key
	}
	return out
}

// ReleaseOwner frees the address and namespace of a pod known only by its IPAM owner entry.
func (m *Manager) ReleaseOwner(uid, key string) error {
	ns, name, _ := cut(key)
	return m.Teardown(ns, name, uid)
}

func cut(key string) (string, string, bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}
