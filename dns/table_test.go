package dns

import (
	"fmt"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// dnsCase is one row of a CoreDNS-style table: the question, the rcode and
// the expected sections in zone-file syntax (order does not matter; SOA
// serials are ignored).
type dnsCase struct {
	qname  string
	qtype  uint16
	noRD   bool
	rcode  int
	answer []string
	ns     []string
	extra  []string
}

const soaNeg = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"

// specCases follow kubernetes/dns docs/specification.md (schema 1.0.1) over
// the fixture in helpers_test.go.
var specCases = []dnsCase{
	// 2.2 schema version.
	{qname: "dns-version.cluster.local.", qtype: mdns.TypeTXT, answer: []string{`dns-version.cluster.local. 5 IN TXT "1.0.1"`}},
	{qname: "cluster.local.", qtype: mdns.TypeSOA, answer: []string{soaNeg}},
	{qname: "cluster.local.", qtype: mdns.TypeNS, ns: []string{soaNeg}},

	// 2.3 ClusterIP services.
	{qname: "kubernetes.default.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"}},
	{qname: "SVC1.TestNS.Svc.Cluster.Local.", qtype: mdns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: mdns.TypeAAAA, ns: []string{soaNeg}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: mdns.TypeTXT, ns: []string{soaNeg}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: mdns.TypeSRV, ns: []string{soaNeg}},
	{qname: "_http._tcp.svc1.testns.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{"_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."},
		extra:  []string{"svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"}},
	{qname: "_dns._udp.svc1.testns.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{"_dns._udp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 53 svc1.testns.svc.cluster.local."},
		extra:  []string{"svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"}},
	// Unnamed ports have no SRV record.
	{qname: "unnamed.testns.svc.cluster.local.", qtype: mdns.TypeSRV, ns: []string{soaNeg}},
	{qname: "_tcp.unnamed.testns.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "_http._udp.svc1.testns.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "_http._tcp.svc1.testns.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaNeg}},
	// Empty non-terminals exist (RFC 8020): NODATA, not NXDOMAIN.
	{qname: "_tcp.svc1.testns.svc.cluster.local.", qtype: mdns.TypeSRV, ns: []string{soaNeg}},
	{qname: "testns.svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaNeg}},
	{qname: "svc.cluster.local.", qtype: mdns.TypeA, ns: []string{soaNeg}},
	{qname: "nosuch.testns.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "nosuchns.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "a.b.svc1.testns.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "other.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "100.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR, answer: []string{"100.0.96.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."}},
	{qname: "dual.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"dual.testns.svc.cluster.local. 5 IN A 10.96.0.101"}},
	{qname: "dual.testns.svc.cluster.local.", qtype: mdns.TypeAAAA, answer: []string{"dual.testns.svc.cluster.local. 5 IN AAAA fd00::101"}},
	{qname: "1.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", qtype: mdns.TypePTR,
		answer: []string{"1.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.testns.svc.cluster.local."}},

	// 2.4 headless services: ready endpoints only, hostname records, SRV, PTR.
	{qname: "hdls1.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{
		"hdls1.testns.svc.cluster.local. 5 IN A 10.244.1.1",
		"hdls1.testns.svc.cluster.local. 5 IN A 10.244.1.2"}},
	{qname: "hdls1.testns.svc.cluster.local.", qtype: mdns.TypeAAAA, ns: []string{soaNeg}},
	{qname: "pet-0.hdls1.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"pet-0.hdls1.testns.svc.cluster.local. 5 IN A 10.244.1.1"}},
	{qname: "10-244-1-2.hdls1.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"10-244-1-2.hdls1.testns.svc.cluster.local. 5 IN A 10.244.1.2"}},
	{qname: "pet-2.hdls1.testns.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "_http._tcp.hdls1.testns.svc.cluster.local.", qtype: mdns.TypeSRV,
		answer: []string{
			"_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 100 80 pet-0.hdls1.testns.svc.cluster.local.",
			"_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 100 80 10-244-1-2.hdls1.testns.svc.cluster.local."},
		extra: []string{
			"pet-0.hdls1.testns.svc.cluster.local. 5 IN A 10.244.1.1",
			"10-244-1-2.hdls1.testns.svc.cluster.local. 5 IN A 10.244.1.2"}},
	{qname: "1.1.244.10.in-addr.arpa.", qtype: mdns.TypePTR, answer: []string{"1.1.244.10.in-addr.arpa. 5 IN PTR pet-0.hdls1.testns.svc.cluster.local."}},
	{qname: "2.1.244.10.in-addr.arpa.", qtype: mdns.TypePTR, answer: []string{"2.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-2.hdls1.testns.svc.cluster.local."}},
	// Not ready and not ours: forwarded; the upstream says NXDOMAIN.
	{qname: "3.1.244.10.in-addr.arpa.", qtype: mdns.TypePTR, rcode: mdns.RcodeNameError,
		ns: []string{"net. 60 IN SOA ns.example.net. h.example.net. 1 2 3 4 30"}},
	{qname: "hdlsnr.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"hdlsnr.testns.svc.cluster.local. 5 IN A 10.244.2.1"}},
	// No ready endpoints: NXDOMAIN, as 2.4.1 says.
	{qname: "hdlsempty.testns.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "hdls6.testns.svc.cluster.local.", qtype: mdns.TypeAAAA, answer: []string{"hdls6.testns.svc.cluster.local. 5 IN AAAA fd00:244::5"}},
	{qname: "web.hdls6.testns.svc.cluster.local.", qtype: mdns.TypeAAAA, answer: []string{"web.hdls6.testns.svc.cluster.local. 5 IN AAAA fd00:244::5"}},

	// 2.5 ExternalName: CNAME, chased through the upstream (as the spec's
	// example shows) or inside the zone.
	{qname: "ext.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{
		"ext.testns.svc.cluster.local. 5 IN CNAME example.net.",
		"example.net. 300 IN A 192.0.2.53"}},
	{qname: "ext.testns.svc.cluster.local.", qtype: mdns.TypeCNAME, answer: []string{"ext.testns.svc.cluster.local. 5 IN CNAME example.net."}},
	{qname: "ext.testns.svc.cluster.local.", qtype: mdns.TypeA, noRD: true, answer: []string{"ext.testns.svc.cluster.local. 5 IN CNAME example.net."}},
	{qname: "ext2.testns.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{
		"ext2.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.",
		"svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"}},

	// 2.6 pod records (verified: a pod with that IP exists in that namespace).
	{qname: "10-244-1-1.testns.pod.cluster.local.", qtype: mdns.TypeA, answer: []string{"10-244-1-1.testns.pod.cluster.local. 5 IN A 10.244.1.1"}},
	{qname: "10-244-1-1.default.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "10-244-9-9.testns.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},
	{qname: "10-244-1-1.testns.pod.cluster.local.", qtype: mdns.TypeAAAA, ns: []string{soaNeg}},
	{qname: "testns.pod.cluster.local.", qtype: mdns.TypeA, ns: []string{soaNeg}},
	{qname: "pod.cluster.local.", qtype: mdns.TypeA, ns: []string{soaNeg}},
	{qname: "bogus.testns.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, ns: []string{soaNeg}},

	// ANY: minimal answer (RFC 8482).
	{qname: "svc1.testns.svc.cluster.local.", qtype: mdns.TypeANY, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100"}},
	{qname: "dns-version.cluster.local.", qtype: mdns.TypeANY, answer: []string{`dns-version.cluster.local. 5 IN TXT "1.0.1"`}},
	{qname: "example.org.", qtype: mdns.TypeANY, answer: []string{`example.org. 3600 IN HINFO "RFC8482" ""`}},

	// Outside the zone: forwarded with RD, REFUSED without.
	{qname: "example.net.", qtype: mdns.TypeA, answer: []string{"example.net. 300 IN A 192.0.2.53"}},
	{qname: "Example.NET.", qtype: mdns.TypeA, answer: []string{"example.net. 300 IN A 192.0.2.53"}},
	{qname: "example.net.", qtype: mdns.TypeAAAA, ns: []string{"example.net. 60 IN SOA ns.example.net. h.example.net. 1 2 3 4 30"}},
	{qname: "example.net.", qtype: mdns.TypeA, noRD: true, rcode: mdns.RcodeRefused},
}

// variants are the ways runCases asks each question: with a plain EDNS0
// OPT, without EDNS0, and with the DO bit. Each is asked twice on one socket
// (so the same read loop answers): the first answer is computed, the second
// comes from the loop's packed answers, and both must match the table.
var variants = []struct {
	name    string
	edns    bool
	do      bool
	repeats int
}{{"edns", true, false, 2}, {"noedns", false, false, 2}, {"do", true, true, 2}}

func runCases(t *testing.T, addr string, cases []dnsCase) {
	t.Helper()
	for _, v := range variants {
		c := &mdns.Client{Net: "udp", Timeout: 3 * time.Second}
		conn, err := c.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, tc := range cases {
			name := v.name + "/" + tc.qname + "/" + mdns.TypeToString[tc.qtype]
			if tc.noRD {
				name += "/norecurse"
			}
			t.Run(name, func(t *testing.T) {
				m := new(mdns.Msg)
				m.SetQuestion(tc.qname, tc.qtype)
				m.RecursionDesired = !tc.noRD
				if v.edns {
					m.SetEdns0(4096, v.do)
				}
				for i := range v.repeats {
					r, _, err := c.ExchangeWithConn(m, conn)
					if err != nil {
						t.Fatal(err)
					}
					checkCase(t, fmt.Sprintf("query %d: ", i+1), tc, m, r)
				}
			})
		}
	}
}

func checkCase(t *testing.T, prefix string, tc dnsCase, q, r *mdns.Msg) {
	t.Helper()
	if r.Rcode != tc.rcode {
		t.Errorf("%srcode %s, want %s", prefix, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
	}
	if r.Truncated {
		t.Errorf("%sTC set", prefix)
	}
	if r.Id != q.Id || r.RecursionDesired != q.RecursionDesired || !r.Response {
		t.Errorf("%sheader %+v does not answer %+v", prefix, r.MsgHdr, q.MsgHdr)
	}
	if len(r.Question) != 1 || r.Question[0] != q.Question[0] {
		t.Errorf("%squestion %v, want the query's %v unchanged", prefix, r.Question, q.Question)
	}
	switch qo, ro := q.IsEdns0(), r.IsEdns0(); {
	case qo == nil && ro != nil:
		t.Errorf("%sOPT in the answer to a query without EDNS0", prefix)
	case qo != nil && ro == nil:
		t.Errorf("%sno OPT in the answer to an EDNS0 query", prefix)
	case qo != nil && (ro.Do() != qo.Do() || ro.Version() != 0 || ro.UDPSize() != maxUDPResponseSize):
		t.Errorf("%sOPT %v, want version 0, size %d, DO %v", prefix, ro, maxUDPResponseSize, qo.Do())
	}
	for _, sec := range []struct {
		name      string
		got, want []string
	}{
		{"answer", normRRs(r.Answer), parseRRs(t, tc.answer)},
		{"authority", normRRs(r.Ns), parseRRs(t, tc.ns)},
		{"additional", normRRs(r.Extra), parseRRs(t, tc.extra)},
	} {
		if !slices.Equal(sec.got, sec.want) {
			t.Errorf("%s%s section:\n got  %q\n want %q", prefix, sec.name, sec.got, sec.want)
		}
	}
}

// TestSpecFake runs the specification table against informers fed by the
// fake clientset: fast, and independent of the API server.
func TestSpecFake(t *testing.T) {
	up := startUpstream(t)
	reg := prometheus.NewRegistry()
	s := startSyncedServer(t, Config{Client: fakeClient(), Upstreams: []string{up.addr}, Registerer: reg})
	runCases(t, s.Addrs()[0], specCases)
	// The repeats really came from the packed answers.
	if hits := counterValue(t, reg, "skiff_dns_answer_cache_hits_total", nil); hits < float64(len(specCases)) {
		t.Errorf("answer cache hits %v, want at least %d", hits, len(specCases))
	}
}
