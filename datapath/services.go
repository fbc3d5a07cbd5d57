package datapath

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// groupKey names one backend set: a Service port, and whether it is the node-local subset
// used by externalTrafficPolicy=Local. Each group has one service id, one Maglev table and
// one set of counters; all its frontends (ClusterIP, NodePort, externalIPs) point at it.
type groupKey struct {
	Namespace, Name string
	Port            string // the port's name, or its number when unnamed
	Proto           uint8
	Local           bool
}

func (k groupKey) String() string {
	s := fmt.Sprintf("%s/%s:%s/%s", k.Namespace, k.Name, k.Port, protoName(k.Proto))
	if k.Local {
		s += " (local)"
	}
	return s
}

type nsName struct{ Namespace, Name string }

// groupSpec is what one group should look like in the maps.
type groupSpec struct {
	key       groupKey
	frontends []svcKey
	backends  []backendVal // sorted by address:port
}

func protoNumber(p corev1.Protocol) (uint8, bool) {
	switch p {
	case "", corev1.ProtocolTCP:
		return 6, true
	case corev1.ProtocolUDP:
		return 17, true
	}
	return 0, false
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	}
	return strconv.Itoa(int(p))
}

// translator turns Services and EndpointSlices into groups; it needs only the node's config,
// so `skiff datapath verify` can use it without a Datapath.
type translator struct {
	cfg      Config
	nodePort portRange
}

// serviceLabel is the EndpointSlice label naming its Service.
const serviceLabel = discoveryv1.LabelServiceName

// desired computes the groups of svc from its EndpointSlices. It validates everything first
// and returns an error naming the bad field; headless and ExternalName Services have none.
func (d *translator) desired(svc *corev1.Service, slices []*discoveryv1.EndpointSlice) ([]groupSpec, error) {
	id := svc.Namespace + "/" + svc.Name
	if svc.Name == "" {
		return nil, fmt.Errorf("service: metadata.name is empty")
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, nil
	}
	var clusterIPs [][4]byte
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for i, s := range ips {
		if s == corev1.ClusterIPNone || s == "" {
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("service %s: spec.clusterIPs[%d] %q is not an IP address", id, i, s)
		}
		if b, ok := ipv4Bytes(ip); ok {
			clusterIPs = append(clusterIPs, b)
		}
	}
	var extIPs [][4]byte
	for i, s := range svc.Spec.ExternalIPs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("service %s: spec.externalIPs[%d] %q is not an IP address", id, i, s)
		}
		if b, ok := ipv4Bytes(ip); ok {
			extIPs = append(extIPs, b)
		}
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if b, ok := ipv4Bytes(net.ParseIP(ing.IP)); ok {
			extIPs = append(extIPs, b)
		}
	}
	var nodeIPs [][4]byte
	for _, ip := range d.cfg.NodeIPs {
		if b, ok := ipv4Bytes(ip); ok {
			nodeIPs = append(nodeIPs, b)
		}
	}
	if len(clusterIPs) == 0 && len(extIPs) == 0 {
		hasNodePort := false
		for _, p := range svc.Spec.Ports {
			hasNodePort = hasNodePort || p.NodePort != 0
		}
		if !hasNodePort {
			return nil, nil // headless
		}
	}
	local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal

	var out []groupSpec
	for i, sp := range svc.Spec.Ports {
		proto, ok := protoNumber(sp.Protocol)
		if !ok {
			continue // SCTP: not handled by this datapath
		}
		if sp.Port < 1 || sp.Port > 65535 {
			return nil, fmt.Errorf("service %s: spec.ports[%d].port %d must be 1-65535", id, i, sp.Port)
		}
		if sp.NodePort != 0 && (int(sp.NodePort) < d.nodePort.min || int(sp.NodePort) > d.nodePort.max) {
			return nil, fmt.Errorf("service %s: spec.ports[%d].nodePort %d is outside the node port range %s", id, i, sp.NodePort, d.cfg.NodePortRange)
		}
		portName := sp.Name
		if portName == "" {
			portName = strconv.Itoa(int(sp.Port))
		}
		all, localOnly := d.endpointsFor(svc, slices, sp, proto)
		key := groupKey{Namespace: svc.Namespace, Name: svc.Name, Port: portName, Proto: proto}
		port := htons(uint16(sp.Port))
		internal := groupSpec{key: key, backends: all}
		fe := func(g *groupSpec, ip [4]byte, port uint16, scope uint8) {
			g.frontends = append(g.frontends, svcKey{VIP: ip, Port: port, Proto: proto, Scope: scope})
		}
		for _, ip := range clusterIPs {
			fe(&internal, ip, port, scopeInternal)
		}
		for _, ip := range extIPs {
			fe(&internal, ip, port, scopeInternal)
		}
		np := htons(uint16(sp.NodePort))
		if sp.NodePort != 0 {
			for _, ip := range nodeIPs {
				fe(&internal, ip, np, scopeInternal)
			}
		}
		ext := &internal
		if local && (sp.NodePort != 0 || len(extIPs) > 0) {
			lk := key
			lk.Local = true
			out = append(out, groupSpec{key: lk, backends: localOnly})
			ext = &out[len(out)-1]
		}
		if sp.NodePort != 0 {
			for _, ip := range nodeIPs {
				fe(ext, ip, np, scopeExternal)
			}
		}
		for _, ip := range extIPs {
			fe(ext, ip, port, scopeExternal)
		}
		out = append(out, internal)
	}
	return out, nil
}

// endpointsFor returns the backends of one Service port: ready endpoints, or, when none is
// ready, serving+terminating ones (as kube-proxy does), and the node-local subset of those.
func (d *translator) endpointsFor(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, sp corev1.ServicePort, proto uint8) (all, local []backendVal) {
	type cand struct {
		b           backendVal
		ready, term bool
	}
	var cands []cand
	seen := map[backendVal]bool{}
	for _, sl := range slices {
		if sl == nil || sl.Namespace != svc.Namespace || sl.Labels[serviceLabel] != svc.Name || sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32 = -1
		for _, p := range sl.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			pp, _ := protoNumber(ptrOr(p.Protocol, corev1.ProtocolTCP))
			if name == sp.Name && pp == proto && p.Port != nil {
				port = *p.Port
			}
		}
		if port < 1 || port > 65535 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			addr, ok := ipv4Bytes(net.ParseIP(ep.Addresses[0]))
			if !ok {
				continue
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ready
			if ep.Conditions.Serving != nil {
				serving = *ep.Conditions.Serving
			}
			term := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			b := backendVal{Addr: addr, Port: htons(uint16(port)), Proto: proto}
			if ep.NodeName != nil && *ep.NodeName == d.cfg.NodeName {
				b.Flags = backendFlagLocal
			}
			if seen[b] {
				continue
			}
			seen[b] = true
			cands = append(cands, cand{b: b, ready: ready, term: serving && term})
		}
	}
	pick := func(localOnly bool) []backendVal {
		var ready, fallback []backendVal
		for _, c := range cands {
			if localOnly && c.b.Flags&backendFlagLocal == 0 {
				continue
			}
			if c.ready {
				ready = append(ready, c.b)
			} else if c.term {
				fallback = append(fallback, c.b)
			}
		}
		if len(ready) == 0 {
			ready = fallback
		}
		sort.Slice(ready, func(i, j int) bool { return backendLess(ready[i], ready[j]) })
		return ready
	}
	return pick(false), pick(true)
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func backendName(b backendVal) string {
	return net.JoinHostPort(net.IP(b.Addr[:]).String(), strconv.Itoa(int(ntohs(b.Port)))) + "/" + protoName(b.Proto)
}

func backendLess(a, b backendVal) bool {
	if c := bytes.Compare(a.Addr[:], b.Addr[:]); c != 0 {
		return c < 0
	}
	if a.Port != b.Port {
		return ntohs(a.Port) < ntohs(b.Port)
	}
	return a.Proto < b.Proto
}

// backendIdent is a compact stable identity (address, port, protocol) for Maglev hashing and
// change detection; it does not depend on the id the backend got.
func backendIdent(b backendVal) string {
	return string([]byte{b.Addr[0], b.Addr[1], b.Addr[2], b.Addr[3], byte(b.Port), byte(b.Port >> 8), b.Proto})
}
