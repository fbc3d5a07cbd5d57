package localcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	"github.com/skiffnet/skiff/kubelet/podnet"
	"github.com/skiffnet/skiff/kubelet/runtime"
)

// hostSnapshot is what the host had before the cluster's workload ran, for things other
// engineers' clusters and tests share with ours (firewall rules).
type hostSnapshot struct {
	firewall map[string]bool
}

// firewallLines is every rule line of the host's iptables (nft and legacy) and nftables.
func firewallLines() map[string]bool {
	out := map[string]bool{}
	for _, argv := range [][]string{{"iptables-save"}, {"iptables-legacy-save"}, {"nft", "list", "ruleset"}} {
		b, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			continue // not installed
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ":") {
				out[l] = true
			}
		}
	}
	return out
}

func hostState() hostSnapshot {
	return hostSnapshot{firewall: firewallLines()}
}

// leftovers lists what of the cluster is still on the host after `skiff down`: namespaces
// (node and pod), links, routes, pinned BPF state, cgroups, containers, processes and
// firewall rules naming the cluster's network.
func (c *e2eCluster) leftovers() []string {
	var left []string
	add := func(format string, args ...any) { left = append(left, fmt.Sprintf(format, args...)) }
	nw := &Network{Cluster: c.name, Subnet: c.ipnet()}
	prefix := "skiff-" + c.name + "-"

	// Network namespaces: the nodes', and every pod's the test saw.
	entries, _ := os.ReadDir(netns.Dir)
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name()] = true
		if strings.HasPrefix(e.Name(), prefix) {
			add("node netns %s", e.Name())
		}
	}
	c.mu.Lock()
	uids := len(c.podUIDs)
	for uid := range c.podUIDs {
		if name := podnet.NetNSName(uid); have[name] {
			add("pod netns %s (pod %s)", name, uid)
		}
	}
	c.mu.Unlock()
	if uids == 0 {
		add("(check broken: no pods were seen)")
	}

	// Links and routes in the host namespace.
	h, err := netlink.NewHandle()
	if err != nil {
		add("(netlink: %v)", err)
		return left
	}
	defer h.Close()
	links, _ := h.LinkList()
	index := map[int]string{}
	for _, l := range links {
		name := l.Attrs().Name
		index[l.Attrs().Index] = name
		if name == nw.BridgeName() || (strings.HasPrefix(name, "skv") && strings.HasSuffix(name, "-"+c.name)) {
			add("link %s (%s)", name, l.Type())
		}
	}
	routes, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	otherCluster := nw.otherClusterUp(h)
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		switch {
		case nw.Subnet.Contains(r.Dst.IP):
			add("route %s dev %s", r.Dst, index[r.LinkIndex])
		case r.Type == unix.RTN_UNREACHABLE && !otherCluster && (r.Dst.String() == "10.96.0.0/12" || r.Dst.String() == "10.244.0.0/16"):
			add("unreachable route %s (no other local cluster is up)", r.Dst)
		}
	}

	// Pinned maps and links.
	pins, _ := filepath.Glob(filepath.Join(PinRoot, prefix+"*"))
	for _, p := range pins {
		add("BPF pins %s", p)
	}

	// Cgroups of the nodes' containers (one hierarchy per controller on cgroup v1, or v2).
	groups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", runtime.NamespaceFor(prefix)+"*"))
	v2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", runtime.NamespaceFor(prefix)+"*"))
	for _, g := range append(groups, v2...) {
		add("cgroup %s", g)
	}

	// Containers and tasks in the nodes' containerd namespaces (their images may stay).
	ctx := context.Background()
	if nss, err := runtime.NodeNamespaces(ctx, privtest.ContainerdSocket()); err != nil {
		add("(containerd: %v)", err)
	} else {
		for _, ns := range nss {
			if !strings.HasPrefix(ns, runtime.NamespaceFor(prefix)) {
				continue
			}
			rt, err := runtime.New(ctx, privtest.ContainerdSocket(), ns)
			if err != nil {
				add("(containerd %s: %v)", ns, err)
				continue
			}
			cs, err := rt.List(ctx)
			rt.Close()
			if err != nil {
				add("(containerd %s: %v)", ns, err)
			}
			for _, ct := range cs {
				add("container %s/%s", ns, ct.ID)
			}
		}
	}

	// Processes: the daemons (restarted ones too) all run with the cluster's data dir.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, c.dataDir+"/") {
			add("process %s: %s", filepath.Base(filepath.Dir(p)), cmd)
		}
	}

	// Firewall rules that came with the cluster and name its network.
	for l := range firewallLines() {
		if !c.before.firewall[l] && (strings.Contains(l, nw.BridgeName()) || strings.Contains(l, "-"+c.name) || containsAddrIn(l, nw.Subnet)) {
			add("firewall rule %q", l)
		}
	}
	return left
}

// containsAddrIn reports whether a word of line is an address (or CIDR) in subnet.
func containsAddrIn(line string, subnet *net.IPNet) bool {
	for _, w := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ',' || r == '{' || r == '}' }) {
		w, _, _ = strings.Cut(w, "/")
		if ip := net.ParseIP(w); ip != nil && subnet.Contains(ip) {
			return true
		}
	}
	return false
}
