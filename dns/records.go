package dns

import (
	"net/netip"
	"sort"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// SchemaVersion is the version of the Kubernetes DNS schema served in
// dns-version.<zone> TXT.
const SchemaVersion = "1.0.1"

// tolerateUnreadyAnnotation is the old spelling of publishNotReadyAddresses
// that the specification still names in its definition of "ready".
const tolerateUnreadyAnnotation = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

// recordSet collects records by lower-case owner name.
type recordSet map[string][]mdns.RR

func (rs recordSet) add(rr mdns.RR) {
	name := rr.Header().Name
	for _, have := range rs[name] {
		if mdns.IsDuplicate(have, rr) {
			return
		}
	}
	rs[name] = append(rs[name], rr)
}

func hdr(name string, t uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

func addrRR(name string, ip netip.Addr, ttl uint32) mdns.RR {
	if ip.Is4() {
		return &mdns.A{Hdr: hdr(name, mdns.TypeA, ttl), A: ip.AsSlice()}
	}
	return &mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA, ttl), AAAA: ip.AsSlice()}
}

// staticRecords are the records of the zone itself: SOA and dns-version.
func staticRecords(zone string, ttl uint32, serial uint32) recordSet {
	rs := recordSet{}
	rs.add(soaRecord(zone, ttl, serial))
	rs.add(&mdns.TXT{Hdr: hdr("dns-version."+zone, mdns.TypeTXT, ttl), Txt: []string{SchemaVersion}})
	return rs
}

func soaRecord(zone string, ttl, serial uint32) *mdns.SOA {
	return &mdns.SOA{
		Hdr:     hdr(zone, mdns.TypeSOA, ttl),
		Ns:      "ns.dns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  ttl,
	}
}

// serviceRecords computes every record one Service contributes, from the
// Service and its EndpointSlices (spec sections 2.3, 2.4 and 2.5).
func serviceRecords(zone string, ttl uint32, svc *corev1.Service, slices []*discoveryv1.EndpointSlice) recordSet {
	rs := recordSet{}
	base := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + zone)

	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		target := strings.ToLower(strings.TrimSpace(svc.Spec.ExternalName))
		if target == "" {
			return rs
		}
		target = mdns.Fqdn(target)
		if _, ok := mdns.IsDomainName(target); !ok {
			return rs
		}
		rs.add(&mdns.CNAME{Hdr: hdr(base, mdns.TypeCNAME, ttl), Target: target})
		return rs

	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		headlessRecords(rs, base, ttl, svc, slices)
		return rs

	case svc.Spec.ClusterIP == "":
		// Not allocated yet: no records until it is.
		return rs
	}

	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		rs.add(addrRR(base, ip, ttl))
		rs.add(&mdns.PTR{Hdr: hdr(reverseName(ip), mdns.TypePTR, ttl), Ptr: base})
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "" {
			continue // unnamed ports have no SRV record (2.3.2)
		}
		name := srvName(p.Name, string(p.Protocol), base)
		rs.add(&mdns.SRV{Hdr: hdr(name, mdns.TypeSRV, ttl), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: base})
	}
	return rs
}

func srvName(port, proto, base string) string {
	if proto == "" {
		proto = "TCP"
	}
	return strings.ToLower("_" + port + "._" + proto + "." + base)
}

// endpointReady applies the specification's definition of ready: the
// endpoint is ready, or the Service publishes not-ready addresses.
func endpointReady(svc *corev1.Service, ep *discoveryv1.Endpoint) bool {
	if svc.Spec.PublishNotReadyAddresses || svc.Annotations[tolerateUnreadyAnnotation] == "true" {
		return true
	}
	// A nil Ready means unknown, which consumers must read as ready.
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

func headlessRecords(rs recordSet, base string, ttl uint32, svc *corev1.Service, slices []*discoveryv1.EndpointSlice) {
	// Stable output regardless of informer order.
	sort.Slice(slices, func(i, j int) bool { return slices[i].Name < slices[j].Name })
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			continue // FQDN slices carry no addresses we can publish
		}
		for i := range sl.Endpoints {
			ep := &sl.Endpoints[i]
			if !endpointReady(svc, ep) {
				continue
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					continue
				}
				ip = ip.Unmap()
				host := endpointHostname(ep, ip)
				hostName := host + "." + base
				rs.add(addrRR(base, ip, ttl))
				rs.add(addrRR(hostName, ip, ttl))
				rs.add(&mdns.PTR{Hdr: hdr(reverseName(ip), mdns.TypePTR, ttl), Ptr: hostName})
				for _, p := range sl.Ports {
					if p.Name == nil || *p.Name == "" || p.Port == nil {
						continue
					}
					proto := "TCP"
					if p.Protocol != nil {
						proto = string(*p.Protocol)
					}
					rs.add(&mdns.SRV{Hdr: hdr(srvName(*p.Name, proto, base), mdns.TypeSRV, ttl),
						Priority: 0, Weight: 100, Port: uint16(*p.Port), Target: hostName})
				}
			}
		}
	}
}

// endpointHostname is the endpoint's hostname, or else the system-assigned
// identifier the specification allows: the address with dots or colons as
// dashes (10-244-1-5), unique within the Service.
func endpointHostname(ep *discoveryv1.Endpoint, ip netip.Addr) string {
	if ep.Hostname != nil && *ep.Hostname != "" && !strings.Contains(*ep.Hostname, ".") {
		return strings.ToLower(*ep.Hostname)
	}
	return dashedIP(ip)
}

func dashedIP(ip netip.Addr) string {
	s := ip.String()
	if ip.Is4() {
		return strings.ReplaceAll(s, ".", "-")
	}
	return strings.ReplaceAll(s, ":", "-")
}

// reverseName is the in-addr.arpa or ip6.arpa name of ip.
func reverseName(ip netip.Addr) string {
	n, _ := mdns.ReverseAddr(ip.String())
	return n
}

// parseDashedIP undoes dashedIP: "10-244-1-5" or "fd00--5".
func parseDashedIP(label string) (netip.Addr, bool) {
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		ip, err := netip.ParseAddr(strings.ReplaceAll(label, "-", "."))
		if err == nil && ip.Is4() {
			return ip, true
		}
	}
	ip, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":"))
	if err == nil && ip.Is6() && !ip.Is4In6() && ip.Zone() == "" {
		return ip, true
	}
	return netip.Addr{}, false
}
