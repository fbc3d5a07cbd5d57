// Package dns is skiff's cluster DNS server. It implements the Kubernetes
// DNS-based service discovery specification (kubernetes/dns
// docs/specification.md, schema 1.0.1) from an in-memory index that client-go
// informers keep up to date, and forwards every other name to upstream
// resolvers through a bounded cache.
//
// # The 5-second lookup (conntrack race)
//
// glibc and musl send the A and AAAA queries of one lookup at once from one
// UDP socket: two packets of a new flow with the same 5-tuple, often handled
// on two CPUs. Behind kube-proxy's iptables DNAT both reach nf_conntrack
// before either entry is confirmed, each with its own DNAT mapping (picked at
// random by the statistic match); the one confirmed second clashes with the
// first (insert_failed) and is dropped, and the resolver retries after its 5
// second timeout. Pods reach this server at the kube-dns ClusterIP through
// skiff's tc program on their host-side veth instead (bpf/tc_pod.c,
// lb_forward in bpf/lib/lb.h), which never gets there:
//
//   - The backend is a function of the packet's tuple alone: hash3 of
//     addresses, ports and protocol into the Service's Maglev table. Both
//     packets, on whatever CPUs, pick the same backend even when both miss
//     the conntrack map, and both write the same forward and reverse entries
//     into the conntrack LRU hash with BPF_ANY: the second write replaces the
//     first with an equal value, nothing fails, nothing is dropped. (Only a
//     Maglev table change between the two packets could split them over two
//     backends; each reply would still find its own reverse entry, which is
//     keyed by backend.)
//   - The DNAT is written into the packet at tc ingress, before netfilter.
//     nf_conntrack on the node sees two identical, already translated tuples
//     and no NAT of its own, so when both are unconfirmed at once the kernel
//     resolves the clash (clash_resolve) instead of dropping (insert_failed).
//   - The answer leaves through the pod's veth, where the egress program
//     (ct_reverse) restores 10.96.0.10:53 as its source from the reverse
//     entry, so the pod's connected socket accepts it. For that the answer
//     must come from the address the query was sent to: the agent binds the
//     node IP, and on a wildcard address (skiff dns --listen :53) the read
//     loops read IP_PKTINFO and send from the query's destination.
//   - Node processes under socket LB (skiff agent --cgroup-root) have no
//     packet to race on: connect4/sendmsg4 rewrite the destination before a
//     packet exists.
//
// TestE2EParallelAAAAThroughClusterIP checks this with the real datapath:
// 300 lookups, A and AAAA sent from two CPUs at once (and back to back, as
// sendmmsg does) on one socket connected to the ClusterIP, on a node with
// nf_conntrack, NAT and kube-proxy's INVALID drop loaded. Every answer
// arrives and insert_failed stays 0, while clash_resolve counts some pairs
// (11 of 300 in one run): the race does happen, and is harmless.
//
// The server does its part by answering A and AAAA independently, from the
// index, with no per-client serialisation.
package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
)

// PodsMode selects how <a>-<b>-<c>-<d>.<ns>.pod.<zone> records are answered.
type PodsMode string

const (
	// PodsVerified answers a pod name only if a pod with that IP exists in
	// that namespace. It is the default: "insecure" mode lets anybody mint a
	// name under the cluster zone for an arbitrary IP (for example to match a
	// wildcard certificate *.ns.pod.cluster.local), while "verified" keeps the
	// deprecated pod records working for workloads that rely on them. The price
	// is a watch on Pods (stripped to name, namespace and IPs to bound memory).
	PodsVerified PodsMode = "verified"
	// PodsInsecure answers every well-formed name from the name alone, as the
	// deprecated kube-dns behaviour in the specification section 2.6 does.
	PodsInsecure PodsMode = "insecure"
	// PodsDisabled answers NXDOMAIN for pod names and starts no pod watch.
	PodsDisabled PodsMode = "disabled"
)

// Config configures a Server. Only Client is required.
type Config struct {
	// Client feeds the index through informers (list+watch).
	Client kubernetes.Interface
	// Zone is the cluster domain, default "cluster.local".
	Zone string
	// Listen holds "ADDR:PORT" addresses; each is served on UDP and TCP.
	// Default ":53".
	Listen []string
	// Upstreams are "ADDR" or "ADDR:PORT" resolvers for names outside the
	// zone. Nil means the nameservers of ResolvConf; an empty non-nil slice
	// disables forwarding (SERVFAIL for outside names).
	Upstreams []string
	// ResolvConf is read when Upstreams is nil, default /etc/resolv.conf.
	ResolvConf string
	// TTL of cluster records and the SOA minimum, default 5 seconds.
	TTL uint32
	// Pods selects pod records: verified (default), insecure or disabled.
	Pods PodsMode
	// CacheSize bounds the forwarding cache in entries, default 10000;
	// negative disables the cache.
	CacheSize int
	// MaxCacheTTL caps positive cache entries, default 1 hour.
	MaxCacheTTL time.Duration
	// MaxNegativeTTL caps negative cache entries, default 5 minutes.
	MaxNegativeTTL time.Duration
	// ForwardTimeout bounds one forwarded query over all upstreams, default 2s.
	ForwardTimeout time.Duration
	// MaxForwards bounds queries waiting on upstreams at once (each holds a
	// goroutine); beyond it outside names get SERVFAIL. Default 1000.
	MaxForwards int
	// MaxTCPConns bounds open TCP connections per listener, default 1000.
	MaxTCPConns int
	// ClientQPS is a per-client-IP query rate limit (token bucket, burst
	// 2*ClientQPS); over it the server answers REFUSED. 0 disables it.
	ClientQPS float64
	// Registerer receives the metrics; default prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

const (
	defaultZone        = "cluster.local"
	defaultTTL         = 5
	defaultCacheSize   = 10000
	maxUDPResponseSize = 1232 // DNS flag day 2020: avoids IP fragmentation.
	readUDPSize        = 4096 // larger UDP queries are cut and rejected as malformed.
)

func (c *Config) setDefaults() error {
	if c.Client == nil {
		return errors.New("dns config: Client is nil: pass a kubernetes.Interface built from the kubeconfig")
	}
	if c.Zone == "" {
		c.Zone = defaultZone
	}
	zone := strings.ToLower(mdns.Fqdn(c.Zone))
	if _, ok := mdns.IsDomainName(zone); !ok || zone == "." {
		return fmt.Errorf("dns config: Zone %q is not a domain name: use a name like cluster.local", c.Zone)
	}
	c.Zone = zone
	if len(c.Listen) == 0 {
		c.Listen = []string{":53"}
	}
	for _, l := range c.Listen {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return fmt.Errorf("dns config: Listen %q: %v: use ADDR:PORT, e.g. 0.0.0.0:53", l, err)
		}
	}
	if c.TTL == 0 {
		c.TTL = defaultTTL
	}
	switch c.Pods {
	case "":
		c.Pods = PodsVerified
	case PodsVerified, PodsInsecure, PodsDisabled:
	default:
		return fmt.Errorf("dns config: Pods %q: use verified, insecure or disabled", c.Pods)
	}
	if c.CacheSize == 0 {
		c.CacheSize = defaultCacheSize
	}
	if c.MaxCacheTTL <= 0 {
		c.MaxCacheTTL = time.Hour
	}
	if c.MaxNegativeTTL <= 0 {
		c.MaxNegativeTTL = 5 * time.Minute
	}
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = 2 * time.Second
	}
	if c.MaxForwards <= 0 {
		c.MaxForwards = 1000
	}
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = 1000
	}
	if c.ClientQPS < 0 {
		return fmt.Errorf("dns config: ClientQPS %v is negative: use 0 to disable the limit", c.ClientQPS)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.DefaultRegisterer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Upstreams == nil {
		if c.ResolvConf == "" {
			c.ResolvConf = "/etc/resolv.conf"
		}
		ups, err := readResolvConf(c.ResolvConf)
		if err != nil {
			// A node without resolv.conf still serves the cluster zone.
			c.Logger.Warn("dns: no upstreams, outside names will get SERVFAIL", "resolvconf", c.ResolvConf, "err", err)
		}
		c.Upstreams = ups
	}
	ups := make([]string, 0, len(c.Upstreams))
	for _, u := range c.Upstreams {
		hp, err := normalizeUpstream(u)
		if err != nil {
			return fmt.Errorf("dns config: Upstreams %q: %w", u, err)
		}
		if c.isOwnAddress(hp) {
			// Forwarding to ourselves would loop until the timeout.
			c.Logger.Warn("dns: ignoring upstream that is this server's own listen address", "upstream", hp)
			continue
		}
		ups = append(ups, hp)
	}
	c.Upstreams = ups
	return nil
}

// normalizeUpstream turns "ADDR" or "ADDR:PORT" into "ADDR:PORT".
func normalizeUpstream(u string) (string, error) {
	u = strings.TrimSpace(u)
	if ip := net.ParseIP(strings.Trim(u, "[]")); ip != nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(u)
	if err != nil {
		return "", fmt.Errorf("%v: use IP or IP:PORT", err)
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("%q is not an IP address: use IP or IP:PORT", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("port %q is not 1-65535", port)
	}
	return net.JoinHostPort(host, port), nil
}

func (c *Config) isOwnAddress(hostport string) bool {
	host, port, _ := net.SplitHostPort(hostport)
	ip := net.ParseIP(host)
	for _, l := range c.Listen {
		lh, lp, _ := net.SplitHostPort(l)
		if lp != port {
			continue
		}
		lip := net.ParseIP(lh)
		if lip != nil && lip.Equal(ip) {
			return true
		}
		if (lh == "" || (lip != nil && lip.IsUnspecified())) && ip.IsLoopback() {
			return true
		}
	}
	return false
}
