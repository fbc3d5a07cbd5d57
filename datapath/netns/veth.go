package netns

import (
	"fmt"
	"os/exec"

	"github.com/vishvananda/netlink"
)

// Veth joins two namespaces with a veth pair: nameA in a, nameB in b, each given its address
// (CIDR notation; "" for none) and set up. tx checksum offload is turned off on both ends, as
// tests and benchmarks want: with it on, veth never fills in checksums, which would hide a
// datapath that gets them wrong.
func Veth(a *NS, nameA, addrA string, b *NS, nameB, addrB string) error {
	ha, err := a.Netlink()
	if err != nil {
		return err
	}
	defer ha.Close()
	hb, err := b.Netlink()
	if err != nil {
		return err
	}
	defer hb.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB, PeerNamespace: netlink.NsFd(b.FD())}
	if err := ha.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s: %w", nameA, nameB, err)
	}
	for _, side := range []struct {
		h          *netlink.Handle
		ns         *NS
		name, addr string
	}{{ha, a, nameA, addrA}, {hb, b, nameB, addrB}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			return fmt.Errorf("veth %s: %w", side.name, err)
		}
		if side.addr != "" {
			addr, err := netlink.ParseAddr(side.addr)
			if err != nil {
				return fmt.Errorf("veth %s address %q: %w", side.name, side.addr, err)
			}
			if err := side.h.AddrAdd(l, addr); err != nil {
				return fmt.Errorf("veth %s address %s: %w", side.name, side.addr, err)
			}
		}
		if err := side.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("veth %s up: %w", side.name, err)
		}
		// exec from the locked thread Do runs on, so ethtool starts inside the namespace.
		if err := side.ns.Do(func() error {
			if out, err := exec.Command("ethtool", "-K", side.name, "tx", "off").CombinedOutput(); err != nil {
				return fmt.Errorf("ethtool -K %s tx off: %v: %s", side.name, err, out)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
