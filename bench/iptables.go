package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// kube-proxy's iptables layout, reproduced from pkg/proxy/iptables/proxier.go: the same chains,
// chain-name hashes, rule order, match order and comments, so iptables-restore gets the same
// work a real kube-proxy gives it.
const (
	masqMark = "0x4000"
	// largeClusterEndpointsThreshold: above this many endpoints kube-proxy drops the per-endpoint
	// comments to keep the table small ("large cluster mode").
	largeClusterEndpointsThreshold = 1000
)

// portProtoHash is kube-proxy's chain-name hash: base32(sha256(name+protocol))[:16].
func portProtoHash(servicePortName, protocol string) string {
	h := sha256.Sum256([]byte(servicePortName + protocol))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

func svcChainName(p svcPort) string { return "KUBE-SVC-" + portProtoHash(p.String(), p.Protocol) }

func sepChainName(p svcPort, endpoint string) string {
	h := sha256.Sum256([]byte(p.String() + p.Protocol + endpoint))
	return "KUBE-SEP-" + base32.StdEncoding.EncodeToString(h[:])[:16]
}

// probability is kube-proxy's format for the statistic match.
func probability(n int) string { return fmt.Sprintf("%0.10f", 1.0/float64(n)) }

// IptablesChains lists the per-service chains the rules for svcs/slices create, for deleting
// them later as kube-proxy deletes stale chains.
func IptablesChains(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, p := range svcPorts(svcs, slices) {
		if len(p.Endpoints) == 0 {
			continue
		}
		out = append(out, svcChainName(p))
		for _, ep := range p.Endpoints {
			out = append(out, sepChainName(p, ep))
		}
	}
	return out
}

// IptablesRestore returns the iptables-restore input of one kube-proxy full sync for svcs and
// slices, meant for `iptables-restore --noflush --counters`. stale are chains of an earlier
// sync that no longer exist: they are flushed and deleted, as kube-proxy does.
func IptablesRestore(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice, clusterCIDR string, stale []string) []byte {
	return iptablesRestore(svcPorts(svcs, slices), clusterCIDR, nil, stale)
}

// IptablesPartialRestore is the input of a kube-proxy partial sync (MinimizeIPTablesRestore,
// the default since Kubernetes 1.27) after the services named in changed ("namespace/name")
// changed: the filter table and nat's top-level chains in full (KUBE-SERVICES with a jump for
// every service port), but the KUBE-SVC-/KUBE-SEP- chains of the changed services only. stale
// chains are deleted unless the cluster is "large", where kube-proxy leaves them to its
// periodic cleanup.
func IptablesPartialRestore(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice, changed []string, clusterCIDR string, stale []string) []byte {
	only := map[string]bool{}
	for _, c := range changed {
		only[c] = true
	}
	ports := svcPorts(svcs, slices)
	if largeCluster(ports) {
		stale = nil
	}
	return iptablesRestore(ports, clusterCIDR, only, stale)
}

// largeCluster is kube-proxy's largeClusterMode: more endpoint chains than the threshold.
func largeCluster(ports []svcPort) bool {
	total := 0
	for _, p := range ports {
		total += len(p.Endpoints)
	}
	return total > largeClusterEndpointsThreshold
}

// iptablesRestore writes the restore input; only (when not nil) limits the per-service chains
// to the services it names, as a partial sync does.
func iptablesRestore(ports []svcPort, clusterCIDR string, only map[string]bool, stale []string) []byte {
	large := largeCluster(ports)
	comment := func(s string) string {
		if large {
			return ""
		}
		return " -m comment --comment " + s
	}

	var filter, nat, natChains bytes.Buffer
	filter.WriteString("*filter\n")
	for _, c := range []string{"KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"} {
		fmt.Fprintf(&filter, ":%s - [0:0]\n", c)
	}
	filter.WriteString("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n")
	fmt.Fprintf(&filter, "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark %s/%s -j ACCEPT\n", masqMark, masqMark)
	filter.WriteString("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
	filter.WriteString("COMMIT\n")

	natChains.WriteString("*nat\n")
	for _, c := range []string{"KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"} {
		fmt.Fprintf(&natChains, ":%s - [0:0]\n", c)
	}
	fmt.Fprintf(&nat, "-A KUBE-POSTROUTING -m mark ! --mark %s/%s -j RETURN\n", masqMark, masqMark)
	fmt.Fprintf(&nat, "-A KUBE-POSTROUTING -j MARK --xor-mark %s\n", masqMark)
	nat.WriteString("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n")
	fmt.Fprintf(&nat, "-A KUBE-MARK-MASQ -j MARK --or-mark %s\n", masqMark)

	// kube-proxy buffers the KUBE-SERVICES jumps and the per-service chains separately and writes
	// the jumps first; the nodeports rule is last in KUBE-SERVICES.
	var services, perService bytes.Buffer
	for _, p := range ports {
		if len(p.Endpoints) == 0 {
			continue
		}
		name := p.String()
		svcChain := svcChainName(p)
		match := fmt.Sprintf("-m comment --comment \"%s cluster IP\" -m %s -p %s -d %s --dport %d",
			name, p.Protocol, p.Protocol, p.ClusterIP, p.Port)
		fmt.Fprintf(&services, "-A KUBE-SERVICES %s -j %s\n", match, svcChain)
		if only != nil && !only[p.Namespace+"/"+p.Name] {
			continue // a partial sync leaves unchanged services' chains as they are
		}
		fmt.Fprintf(&natChains, ":%s - [0:0]\n", svcChain)
		fmt.Fprintf(&perService, "-A %s %s ! -s %s -j KUBE-MARK-MASQ\n", svcChain, match, clusterCIDR)
		n := len(p.Endpoints)
		for i, ep := range p.Endpoints {
			fmt.Fprintf(&perService, "-A %s%s", svcChain, comment(fmt.Sprintf("\"%s -> %s\"", name, ep)))
			if i < n-1 {
				fmt.Fprintf(&perService, " -m statistic --mode random --probability %s", probability(n-i))
			}
			fmt.Fprintf(&perService, " -j %s\n", sepChainName(p, ep))
		}
		for _, ep := range p.Endpoints {
			sep := sepChainName(p, ep)
			fmt.Fprintf(&natChains, ":%s - [0:0]\n", sep)
			host, _, _ := net.SplitHostPort(ep)
			fmt.Fprintf(&perService, "-A %s%s -s %s -j KUBE-MARK-MASQ\n", sep, comment(name), host)
			fmt.Fprintf(&perService, "-A %s%s -m %s -p %s -j DNAT --to-destination %s\n", sep, comment(name), p.Protocol, p.Protocol, ep)
		}
	}
	services.WriteString("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n")
	for _, c := range stale {
		fmt.Fprintf(&natChains, ":%s - [0:0]\n", c)
	}

	var out bytes.Buffer
	out.Grow(filter.Len() + natChains.Len() + nat.Len() + services.Len() + perService.Len() + 64*len(stale) + 16)
	out.Write(filter.Bytes())
	out.Write(natChains.Bytes())
	out.Write(nat.Bytes())
	out.Write(services.Bytes())
	out.Write(perService.Bytes())
	for _, c := range stale {
		out.WriteString("-X " + c + "\n")
	}
	out.WriteString("COMMIT\n")
	return out.Bytes()
}

// IptablesJumps are the jumps from the built-in chains into kube-proxy's chains, which
// kube-proxy installs once with `iptables -I` (here: one `iptables-restore --noflush`).
func IptablesJumps() []byte {
	return []byte(`*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
COMMIT
`)
}
