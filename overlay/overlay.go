package overlay

import (
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Peer is another node as the overlay sees it.
type Peer struct {
	Node    string
	PodCIDR *net.IPNet
	VtepIP  net.IP           // the peer's underlay address
	VtepMAC net.HardwareAddr // the MAC of the peer's VXLAN device
}

// Overlay is one node's VXLAN device and the forwarding state towards its peers.
type Overlay struct {
	mu   sync.Mutex
	h    *netlink.Handle
	link *netlink.Vxlan
}

// New creates or adopts the node's VXLAN device and gives it podCIDR's gateway address.
// h is a netlink handle in the node's network namespace.
func New(h *netlink.Handle, cfg DeviceConfig, podCIDR *net.IPNet) (*Overlay, error) {
	link, err := ensureDevice(h, cfg)
	if err != nil {
		return nil, err
	}
	if podCIDR != nil {
		if err := ensureAddr(h, link, podCIDR); err != nil {
			return nil, err
		}
	}
	return &Overlay{h: h, link: link}, nil
}

// MAC is the device's address, which the node publishes for its peers.
func (o *Overlay) MAC() net.HardwareAddr { return o.link.HardwareAddr }

// LocalIP is the device's underlay address.
func (o *Overlay) LocalIP() net.IP { return o.link.SrcAddr }

// MTU is the device's MTU, which pod veths should use.
func (o *Overlay) MTU() int { return o.link.MTU }

// Name is the device's name.
func (o *Overlay) Name() string { return o.link.Name }

// SetPeers makes the kernel state towards peers exactly what is given: entries for new or
// changed peers are added (FDB and neighbour first, route last, so a route never points at
// an unresolved next hop), entries for peers that are gone are removed (route first).
// Existing correct entries are left alone.
func (o *Overlay) SetPeers(peers []Peer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	idx := o.link.Index
	want := map[string]Peer{} // by gateway IP
	for _, p := range peers {
		if p.PodCIDR == nil || p.VtepIP.To4() == nil || len(p.VtepMAC) != 6 {
			return fmt.Errorf("peer %s: needs a pod CIDR, an IPv4 VTEP IP and a VTEP MAC (got %v, %v, %v)", p.Node, p.PodCIDR, p.VtepIP, p.VtepMAC)
		}
		want[Gateway(p.PodCIDR).String()] = p
	}

	routes, err := o.h.RouteList(o.link, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list routes on %s: %w", o.link.Name, err)
	}
	neighs, err := o.h.NeighList(idx, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list neighbours on %s: %w", o.link.Name, err)
	}
	fdb, err := o.h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("list FDB of %s: %w", o.link.Name, err)
	}
	wantMACs := map[string]net.IP{}
	for _, p := range want {
		wantMACs[p.VtepMAC.String()] = p.VtepIP.To4()
	}

	// Remove what no peer wants, routes first.
	for _, r := range routes {
		if r.Dst == nil || r.Gw == nil {
			continue
		}
		if p, ok := want[r.Gw.String()]; ok && r.Dst.String() == p.PodCIDR.String() {
			continue
		}
		if err := o.h.RouteDel(&r); err != nil {
			return fmt.Errorf("remove route %s: %w", r.Dst, err)
		}
	}
	for _, n := range neighs {
		if p, ok := want[n.IP.String()]; ok && n.HardwareAddr.String() == p.VtepMAC.String() {
			continue
		}
		if n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		if err := o.h.NeighDel(&n); err != nil {
			return fmt.Errorf("remove neighbour %s: %w", n.IP, err)
		}
	}
	for _, f := range fdb {
		if ip, ok := wantMACs[f.HardwareAddr.String()]; ok && f.IP.Equal(ip) {
			continue
		}
		if f.IP == nil { // the kernel's own entries for the device
			continue
		}
		if err := o.h.NeighDel(&f); err != nil {
			return fmt.Errorf("remove FDB entry %s: %w", f.HardwareAddr, err)
		}
	}

	// Add or correct what is wanted, in a stable order so errors are reproducible.
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := want[k]
		gw := Gateway(p.PodCIDR)
		if err := o.h.NeighSet(&netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: p.VtepIP.To4(), HardwareAddr: p.VtepMAC,
		}); err != nil {
			return fmt.Errorf("peer %s: FDB entry %s -> %s: %w", p.Node, p.VtepMAC, p.VtepIP, err)
		}
		if err := o.h.NeighSet(&netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			Type: unix.RTN_UNICAST, IP: gw, HardwareAddr: p.VtepMAC,
		}); err != nil {
			return fmt.Errorf("peer %s: neighbour %s -> %s: %w", p.Node, gw, p.VtepMAC, err)
		}
		if err := o.h.RouteReplace(&netlink.Route{
			LinkIndex: idx, Dst: p.PodCIDR, Gw: gw, Flags: int(netlink.FLAG_ONLINK),
		}); err != nil {
			return fmt.Errorf("peer %s: route %s via %s: %w", p.Node, p.PodCIDR, gw, err)
		}
	}
	return nil
}

// Delete removes the device and with it every FDB entry, neighbour and route on it.
func (o *Overlay) Delete() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.h.LinkDel(o.link); err != nil {
		return fmt.Errorf("remove %s: %w", o.link.Name, err)
	}
	return nil
}
