// Package overlay connects pod subnets across nodes with a VXLAN device, as flannel's vxlan
// backend does: one device per node, and for every other node a permanent FDB entry (its VTEP
// MAC -> its underlay IP), a neighbour entry (its subnet's .0 -> its VTEP MAC) and an onlink
// route to its subnet through that .0. Nothing is learnt or flooded, so the state is exactly
// what the API says.
package overlay

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults of the device; the port is the Linux kernel's (and flannel's) VXLAN port.
const (
	DefaultDevice = "skiff.vxlan"
	DefaultVNI    = 1
	DefaultPort   = 8472
	// Overhead is what VXLAN adds to every packet: outer IPv4 (20), UDP (8), VXLAN (8) and
	// inner Ethernet (14). Pod veths get the underlay MTU less this.
	Overhead = 50
)

// DeviceConfig describes the VXLAN device of one node.
type DeviceConfig struct {
	Name     string // DefaultDevice when empty
	VNI      int    // DefaultVNI when 0
	Port     int    // DefaultPort when 0
	LocalIP  net.IP // the node's underlay address: the outer source of every packet
	Underlay string // the device LocalIP lives on
}

func (c *DeviceConfig) defaults() {
	if c.Name == "" {
		c.Name = DefaultDevice
	}
	if c.VNI == 0 {
		c.VNI = DefaultVNI
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
}

// ensureDevice makes the VXLAN device match cfg. An existing device that already matches is
// kept (so its FDB, neighbours and routes survive an agent restart); one that differs is
// replaced.
func ensureDevice(h *netlink.Handle, cfg DeviceConfig) (*netlink.Vxlan, error) {
	cfg.defaults()
	if cfg.LocalIP.To4() == nil {
		return nil, fmt.Errorf("vxlan %s: local IP %q is not IPv4: set the node IP", cfg.Name, cfg.LocalIP)
	}
	under, err := h.LinkByName(cfg.Underlay)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: underlay device %q: %w", cfg.Name, cfg.Underlay, err)
	}
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: cfg.Name, MTU: under.Attrs().MTU - Overhead},
		VxlanId:      cfg.VNI,
		VtepDevIndex: under.Attrs().Index,
		SrcAddr:      cfg.LocalIP.To4(),
		Port:         cfg.Port,
		Learning:     false,
	}
	if l, err := h.LinkByName(cfg.Name); err == nil {
		if have, ok := l.(*netlink.Vxlan); ok && sameVxlan(have, want) {
			if err := h.LinkSetUp(have); err != nil {
				return nil, fmt.Errorf("vxlan %s: set up: %w", cfg.Name, err)
			}
			return have, nil
		}
		if err := h.LinkDel(l); err != nil {
			return nil, fmt.Errorf("vxlan %s: remove mismatched device: %w", cfg.Name, err)
		}
	} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, fmt.Errorf("vxlan %s: look up: %w", cfg.Name, err)
	}
	if err := h.LinkAdd(want); err != nil {
		return nil, fmt.Errorf("vxlan %s: create: %w", cfg.Name, err)
	}
	l, err := h.LinkByName(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: look up after create: %w", cfg.Name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("vxlan %s: set up: %w", cfg.Name, err)
	}
	return l.(*netlink.Vxlan), nil
}

func sameVxlan(have, want *netlink.Vxlan) bool {
	return have.VxlanId == want.VxlanId &&
		have.VtepDevIndex == want.VtepDevIndex &&
		have.SrcAddr.Equal(want.SrcAddr) &&
		have.Port == want.Port &&
		!have.Learning &&
		have.MTU == want.MTU
}

// ensureAddr gives the device its subnet's .0 as a /32, the next hop other nodes route to.
func ensureAddr(h *netlink.Handle, link netlink.Link, podCIDR *net.IPNet) error {
	gw := Gateway(podCIDR)
	want := &netlink.Addr{IPNet: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}}
	addrs, err := h.AddrList(link, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == want.IPNet.String() {
			continue
		}
		// A stale address from an earlier pod CIDR would attract other nodes' traffic.
		if err := h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, link.Attrs().Name, err)
		}
	}
	if err := h.AddrReplace(link, want); err != nil {
		return fmt.Errorf("add %s to %s: %w", want.IPNet, link.Attrs().Name, err)
	}
	return nil
}

// Gateway is the .0 address of a pod subnet, which the VXLAN device of its node carries.
func Gateway(podCIDR *net.IPNet) net.IP {
	return podCIDR.IP.Mask(podCIDR.Mask).To4()
}
