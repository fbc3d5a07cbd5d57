package datapath

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is what New needs. Zero values get the defaults noted on each field.
type Config struct {
	// PinDir holds the pinned maps and links (default /sys/fs/bpf/skiff).
	PinDir string
	// ServiceCIDR gets an unreachable route in the calling netns (default 10.96.0.0/12).
	ServiceCIDR string
	// NodeIPs are this node's addresses: NodePort frontends, and NodeIPs[0] is the SNAT source
	// towards remote NodePort backends.
	NodeIPs []net.IP
	// Devices get the NodePort/externalIPs programs. Empty = none; the agent resolves
	// DevicesAuto to the device of the default route. They must be in the netns New is called in.
	Devices []string
	// CgroupPath is a cgroup2 directory for socket LB; empty = off. Never the cgroup2 root.
	CgroupPath string
	// NodePortRange is "MIN-MAX" (default 30000-32767); NodePorts outside it are refused.
	NodePortRange string
	// MaxServices sizes the services, maglev and counters maps, counted in frontends
	// (VIP:port:proto:scope) (default 65536).
	MaxServices int
	// MaxBackends sizes the backends map (default 65536).
	MaxBackends int
	// MaxConntrack sizes the conntrack map (default 262144).
	MaxConntrack int
	// NodeName marks endpoints on this node as local (default: os.Hostname).
	NodeName string
}

const (
	DefaultPinDir      = "/sys/fs/bpf/skiff"
	DefaultServiceCIDR = "10.96.0.0/12"
)

type portRange struct{ min, max int }

func (c *Config) withDefaults() (Config, portRange, *net.IPNet, error) {
	out := *c
	if out.PinDir == "" {
		out.PinDir = DefaultPinDir
	}
	if out.ServiceCIDR == "" {
		out.ServiceCIDR = DefaultServiceCIDR
	}
	if out.NodePortRange == "" {
		out.NodePortRange = "30000-32767"
	}
	if out.MaxServices == 0 {
		out.MaxServices = 65536
	}
	if out.MaxBackends == 0 {
		out.MaxBackends = 65536
	}
	if out.MaxConntrack == 0 {
		out.MaxConntrack = 262144
	}
	if out.NodeName == "" {
		h, _ := os.Hostname()
		out.NodeName = h
	}
	_, cidr, err := net.ParseCIDR(out.ServiceCIDR)
	if err != nil || cidr.IP.To4() == nil {
		return out, portRange{}, nil, fmt.Errorf("datapath config: ServiceCIDR %q is not an IPv4 CIDR (e.g. 10.96.0.0/12)", out.ServiceCIDR)
	}
	pr, err := parsePortRange(out.NodePortRange)
	if err != nil {
		return out, portRange{}, nil, err
	}
	for _, ip := range out.NodeIPs {
		if ip.To4() == nil {
			return out, portRange{}, nil, fmt.Errorf("datapath config: NodeIPs entry %v is not IPv4 (only IPv4 is supported)", ip)
		}
	}
	if out.MaxServices < 1 || out.MaxBackends < 1 || out.MaxConntrack < 1 {
		return out, portRange{}, nil, fmt.Errorf("datapath config: MaxServices, MaxBackends and MaxConntrack must be positive")
	}
	if out.CgroupPath != "" {
		if err := checkCgroupPath(out.CgroupPath); err != nil {
			return out, portRange{}, nil, err
		}
	}
	if !filepath.IsAbs(out.PinDir) {
		return out, portRange{}, nil, fmt.Errorf("datapath config: PinDir %q must be an absolute path under a bpffs mount", out.PinDir)
	}
	return out, pr, cidr, nil
}

func parsePortRange(s string) (portRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return portRange{}, fmt.Errorf("datapath config: NodePortRange %q must be MIN-MAX within 1-65535 (e.g. 30000-32767)", s)
	}
	return portRange{a, b}, nil
}

// DevicesAuto, as the only entry of Config.Devices, asks the agent for the device of the
// node's default route (what --devices defaults to).
const DevicesAuto = "auto"

// checkCgroupPath refuses anything but a cgroup2 directory below a cgroup2 mount's root:
// socket LB on the root would redirect every process on the machine.
func checkCgroupPath(p string) error {
	clean := filepath.Clean(p)
	st, err := os.Stat(clean)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("datapath config: CgroupPath %q is not a cgroup2 directory: %v", p, err)
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("datapath config: read mounts: %w", err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" && filepath.Clean(f[1]) == clean {
			return fmt.Errorf("datapath config: CgroupPath %q is a cgroup2 root; give a child cgroup (e.g. %s/skiff)", p, clean)
		}
	}
	return nil
}
