package datapath

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ensureUnreachableRoute installs "unreachable SERVICE_CIDR": a packet to a ClusterIP that
// was not translated (no backends, a fragment) gets ICMP unreachable instead of leaving the
// node towards a default gateway.
func (d *Datapath) ensureUnreachableRoute(cidr *net.IPNet) error {
	return d.ns.do(func() error {
		r := &netlink.Route{Dst: cidr, Type: unix.RTN_UNREACHABLE, Table: unix.RT_TABLE_MAIN}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("add unreachable route for service CIDR %s: %w", cidr, err)
		}
		return nil
	})
}

// DefaultRouteDevice returns the device of the IPv4 default route in the calling goroutine's
// netns: the agent's default for Config.Devices (--devices).
func DefaultRouteDevice() (string, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.LinkIndex > 0 {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("default route device: %w", err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("no IPv4 default route: give the NodePort devices explicitly (--devices)")
}
