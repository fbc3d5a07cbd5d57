package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// kube-proxy's nftables layout, reproduced from pkg/proxy/nftables/proxier.go: table ip
// kube-proxy, the service-ips verdict map, a "service-HASH-ns/name/proto/port" chain per service
// port with `numgen random mod N vmap`, and an "endpoint-HASH-..." chain per endpoint with the
// DNAT. The output is an `nft -f` transaction, as knftables feeds nft.
const (
	nftTable          = "kube-proxy"
	nftChainNameMax   = 256 - 16 // knftables.NameLengthMax - chainNamePrefixLengthMax
	nftServicePrefix  = "service-"
	nftEndpointPrefix = "endpoint-"
)

// hashAndTruncate is kube-proxy's: base32(sha256(name))[:8] + "-" + name, truncated.
func hashAndTruncate(name string) string {
	h := sha256.Sum256([]byte(name))
	name = base32.StdEncoding.EncodeToString(h[:])[:8] + "-" + name
	if len(name) > nftChainNameMax {
		name = name[:nftChainNameMax-3] + "..."
	}
	return name
}

func nftServiceChain(p svcPort) string {
	return nftServicePrefix + hashAndTruncate(fmt.Sprintf("%s/%s/%s/%s", p.Namespace, p.Name, p.Protocol, p.PortName))
}

func nftEndpointChain(p svcPort, ep string) string {
	host, port, _ := net.SplitHostPort(ep)
	return nftEndpointPrefix + hashAndTruncate(fmt.Sprintf("%s/%s/%s/%s__%s/%s",
		p.Namespace, p.Name, p.Protocol, p.PortName, strings.ReplaceAll(host, ":", "."), port))
}

// nftBase is the fixed part of kube-proxy's table: hooks, masquerading, dispatch maps.
func nftBase(b *bytes.Buffer) {
	t := "ip " + nftTable
	fmt.Fprintf(b, "add table %s { comment \"rules for kube-proxy\" ; }\n", t)
	for _, c := range []struct{ name, hook string }{
		{"filter-forward", "type filter hook forward priority -110 ; "},
		{"nat-output", "type nat hook output priority -100 ; "},
		{"nat-postrouting", "type nat hook postrouting priority 100 ; "},
		{"nat-prerouting", "type nat hook prerouting priority -100 ; "},
	} {
		fmt.Fprintf(b, "add chain %s %s { %s}\n", t, c.name, c.hook)
		fmt.Fprintf(b, "flush chain %s %s\n", t, c.name)
	}
	for _, c := range []string{"mark-for-masquerade", "masquerading", "services"} {
		fmt.Fprintf(b, "add chain %s %s\n", t, c)
		fmt.Fprintf(b, "flush chain %s %s\n", t, c)
	}
	fmt.Fprintf(b, "add rule %s filter-forward ct state invalid drop\n", t)
	fmt.Fprintf(b, "add rule %s nat-output jump services\n", t)
	fmt.Fprintf(b, "add rule %s nat-postrouting jump masquerading\n", t)
	fmt.Fprintf(b, "add rule %s nat-prerouting jump services\n", t)
	fmt.Fprintf(b, "add rule %s mark-for-masquerade mark set mark or %s\n", t, masqMark)
	fmt.Fprintf(b, "add rule %s masquerading mark and %s == 0 return\n", t, masqMark)
	fmt.Fprintf(b, "add rule %s masquerading mark set mark xor %s\n", t, masqMark)
	fmt.Fprintf(b, "add rule %s masquerading masquerade fully-random\n", t)
	fmt.Fprintf(b, "add map %s service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }\n", t)
	fmt.Fprintf(b, "add map %s service-nodeports { type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }\n", t)
	fmt.Fprintf(b, "add rule %s services ip daddr . meta l4proto . th dport vmap @service-ips\n", t)
	fmt.Fprintf(b, "add rule %s services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n", t)
}

// nftServiceRules writes the chains of one service port (flushed first, as kube-proxy does for
// every chain it rewrites).
func nftServiceRules(b *bytes.Buffer, p svcPort, clusterCIDR string) {
	t := "ip " + nftTable
	sc := nftServiceChain(p)
	// The endpoint chains come first: nft resolves a vmap's goto targets when it adds the rule.
	var el []string
	for i, ep := range p.Endpoints {
		ec := nftEndpointChain(p, ep)
		host, _, _ := net.SplitHostPort(ep)
		fmt.Fprintf(b, "add chain %s %s\n", t, ec)
		fmt.Fprintf(b, "flush chain %s %s\n", t, ec)
		fmt.Fprintf(b, "add rule %s %s ip saddr %s jump mark-for-masquerade\n", t, ec, host)
		fmt.Fprintf(b, "add rule %s %s meta l4proto %s dnat to %s\n", t, ec, p.Protocol, ep)
		el = append(el, fmt.Sprintf("%d : goto %s", i, ec))
	}
	fmt.Fprintf(b, "add chain %s %s\n", t, sc)
	fmt.Fprintf(b, "flush chain %s %s\n", t, sc)
	fmt.Fprintf(b, "add rule %s %s ip daddr %s %s dport %d ip saddr != %s jump mark-for-masquerade\n",
		t, sc, p.ClusterIP, p.Protocol, p.Port, clusterCIDR)
	fmt.Fprintf(b, "add rule %s %s numgen random mod %d vmap { %s }\n", t, sc, len(p.Endpoints), strings.Join(el, " , "))
}

// nftElements rebuilds the service-ips map, which kube-proxy flushes and refills on every sync.
func nftElements(b *bytes.Buffer, ports []svcPort) {
	t := "ip " + nftTable
	fmt.Fprintf(b, "flush map %s service-ips\n", t)
	fmt.Fprintf(b, "flush map %s service-nodeports\n", t)
	for _, p := range ports {
		if len(p.Endpoints) == 0 {
			continue
		}
		fmt.Fprintf(b, "add element %s service-ips { %s . %s . %d : goto %s }\n", t, p.ClusterIP, p.Protocol, p.Port, nftServiceChain(p))
	}
}

// NftFull is the nft transaction of a kube-proxy full sync of svcs/slices.
func NftFull(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice, clusterCIDR string) []byte {
	ports := svcPorts(svcs, slices)
	var b bytes.Buffer
	nftBase(&b)
	for _, p := range ports {
		if len(p.Endpoints) > 0 {
			nftServiceRules(&b, p, clusterCIDR)
		}
	}
	nftElements(&b, ports)
	return b.Bytes()
}

// NftUpdate is the transaction of kube-proxy's partial sync after one service changed: the
// changed service's chains are rewritten, endpoint chains it no longer uses are flushed and
// deleted, and the dispatch maps are refilled (kube-proxy rebuilds its maps every sync).
func NftUpdate(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice, changed, before *corev1.Service, beforeSlice, afterSlice *discoveryv1.EndpointSlice, clusterCIDR string) []byte {
	var b bytes.Buffer
	after := svcPorts([]*corev1.Service{changed}, []*discoveryv1.EndpointSlice{afterSlice})
	old := svcPorts([]*corev1.Service{before}, []*discoveryv1.EndpointSlice{beforeSlice})
	keep := map[string]bool{}
	for _, p := range after {
		nftServiceRules(&b, p, clusterCIDR)
		for _, ep := range p.Endpoints {
			keep[nftEndpointChain(p, ep)] = true
		}
	}
	nftElements(&b, svcPorts(svcs, slices))
	for _, p := range old {
		for _, ep := range p.Endpoints {
			if c := nftEndpointChain(p, ep); !keep[c] {
				fmt.Fprintf(&b, "flush chain ip %s %s\n", nftTable, c)
				fmt.Fprintf(&b, "delete chain ip %s %s\n", nftTable, c)
			}
		}
	}
	return b.Bytes()
}

// NftDelete removes kube-proxy's table (its CleanupLeftovers).
func NftDelete() []byte { return []byte("delete table ip " + nftTable + "\n") }
