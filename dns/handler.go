package dns

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// maxCNAMEChain bounds CNAME chasing inside the zone (ExternalName pointing
// at another in-cluster name).
const maxCNAMEChain = 8

// ServeDNS implements mdns.Handler for TCP (and for UDP with the miekg
// server, kept for comparison in the benchmark). miekg/dns has already
// answered FORMERR for unparseable messages and messages with other than one
// question (DefaultMsgAcceptFunc); answer checks again so that it is safe on
// its own.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	start := time.Now()
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	var resp *mdns.Msg
	if !s.limit.allow(remoteIP(w.RemoteAddr())) {
		resp = s.refuseRateLimited(r)
	} else {
		resp, _ = s.answer(r, udp, true)
	}
	s.m.answered(r, resp.Rcode)
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns: write answer", "client", w.RemoteAddr(), "err", err)
	}
	s.m.took(start)
}

// refuseRateLimited answers a client over its rate limit. REFUSED with no
// records is no larger than the query, so it cannot amplify.
func (s *Server) refuseRateLimited(r *mdns.Msg) *mdns.Msg {
	s.m.rateLimited.Inc()
	resp := new(mdns.Msg)
	resp.SetRcode(r, mdns.RcodeRefused)
	resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
	return resp
}

func remoteIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// handle computes the answer to one query; udp selects the size limit. It
// may wait on upstream resolvers.
func (s *Server) handle(r *mdns.Msg, udp bool) *mdns.Msg {
	resp, _ := s.answer(r, udp, true)
	return resp
}

// qstate is what one answer needed besides the index.
type qstate struct {
	rd bool
	// upstreamOK allows waiting on the forwarder. Without it, answer
	// stops where it would have to wait and sets needUpstream, so that the
	// UDP read loops never block on the network; cached forwarded answers
	// are still used.
	upstreamOK   bool
	needUpstream bool
	// cacheable: the answer came from the index alone (no forwarder, no
	// dependence on RD) and may be kept packed until the index changes.
	cacheable bool
}

// answer computes the answer to one query and whether it depends on the
// index alone. With upstreamOK false it returns needUpstream instead of
// waiting for an upstream resolver.
func (s *Server) answer(r *mdns.Msg, udp, upstreamOK bool) (*mdns.Msg, qstate) {
	st := qstate{rd: r.RecursionDesired, upstreamOK: upstreamOK}
	resp := new(mdns.Msg)
	resp.SetReply(r)
	resp.RecursionAvailable = len(s.cfg.Upstreams) > 0

	if r.Response {
		resp.Rcode = mdns.RcodeFormatError
		resp.Question = nil
		return resp, st
	}
	if r.Opcode != mdns.OpcodeQuery {
		resp.Rcode = mdns.RcodeNotImplemented
		return resp, st
	}
	if len(r.Question) != 1 {
		resp.Rcode = mdns.RcodeFormatError
		resp.Question = nil
		return resp, st
	}
	opt := r.IsEdns0()
	if opt != nil && opt.Version() != 0 {
		// RFC 6891 6.1.3: BADVERS with our OPT (version 0).
		resp.Rcode = mdns.RcodeBadVers
		resp.SetEdns0(maxUDPResponseSize, opt.Do())
		return resp, st
	}

	q := r.Question[0]
	name := strings.ToLower(q.Name)
	switch {
	case q.Qclass != mdns.ClassINET:
		resp.Rcode = mdns.RcodeRefused
	case q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR || q.Qtype == mdns.TypeOPT:
		// No zone transfers; OPT is not a question type.
		resp.Rcode = mdns.RcodeRefused
	case s.inZone(name):
		if !s.ready.Load() {
			// Until the first sync an empty index would answer NXDOMAIN
			// for names that exist, and clients would cache that.
			resp.Rcode = mdns.RcodeServerFailure
			break
		}
		st.cacheable = true
		s.authoritative(resp, name, q.Qtype, &st, 0)
	case s.ready.Load() && q.Qtype == mdns.TypePTR && s.hasReverse(name):
		st.cacheable = true
		s.authoritative(resp, name, q.Qtype, &st, 0)
	case !r.RecursionDesired:
		// Not our zone and no recursion wanted: we have nothing to say.
		resp.Rcode = mdns.RcodeRefused
	case q.Qtype == mdns.TypeANY:
		// RFC 8482: no upstream round trip and no amplification.
		resp.Answer = []mdns.RR{rfc8482(q.Name)}
	default:
		s.forward(resp, name, q.Qtype, opt, r.CheckingDisabled, &st)
	}
	if st.needUpstream {
		st.cacheable = false
		return resp, st
	}

	size := mdns.MaxMsgSize
	if udp {
		size = mdns.MinMsgSize
		if opt != nil {
			size = min(max(int(opt.UDPSize()), mdns.MinMsgSize), maxUDPResponseSize)
		}
	}
	if opt != nil {
		resp.SetEdns0(maxUDPResponseSize, opt.Do())
	}
	// Truncate drops whole records from the end and sets TC when the
	// answer does not fit; TCP clients get everything up to 64 KiB.
	resp.Truncate(size)
	if resp.Truncated {
		st.cacheable = false
	}
	return resp, st
}

func rfc8482(owner string) mdns.RR {
	return &mdns.HINFO{Hdr: hdr(owner, mdns.TypeHINFO, 3600), Cpu: "RFC8482"}
}

func (s *Server) inZone(name string) bool {
	return name == s.cfg.Zone || strings.HasSuffix(name, "."+s.cfg.Zone)
}

func (s *Server) hasReverse(name string) bool {
	if !strings.HasSuffix(name, ".in-addr.arpa.") && !strings.HasSuffix(name, ".ip6.arpa.") {
		return false
	}
	rrs, _ := s.idx.lookup(name)
	return len(rrs) > 0
}

// lookupName returns the records at name and whether name exists.
func (s *Server) lookupName(name string) ([]mdns.RR, bool) {
	if strings.HasSuffix(name, s.podSuffix) || name == s.podSuffix[1:] {
		return s.lookupPod(name)
	}
	return s.idx.lookup(name)
}

// lookupPod answers <a>-<b>-<c>-<d>.<ns>.pod.<zone> (spec 2.6).
func (s *Server) lookupPod(name string) ([]mdns.RR, bool) {
	if s.cfg.Pods == PodsDisabled {
		return nil, false
	}
	if name == s.podSuffix[1:] {
		return nil, true // pod.<zone>: empty non-terminal
	}
	labels := strings.Split(strings.TrimSuffix(name, s.podSuffix), ".")
	switch len(labels) {
	case 1: // <ns>.pod.<zone>
		if s.cfg.Pods == PodsInsecure {
			return nil, true
		}
		_, nsExists := s.idx.hasPod(labels[0], netip.Addr{})
		return nil, nsExists
	case 2:
		ip, ok := parseDashedIP(labels[0])
		if !ok {
			return nil, false
		}
		if s.cfg.Pods == PodsVerified {
			if ok, _ := s.idx.hasPod(labels[1], ip); !ok {
				return nil, false
			}
		}
		return []mdns.RR{addrRR(name, ip, s.cfg.TTL)}, true
	}
	return nil, false
}

// authoritative fills resp from the index for a name in the zone.
func (s *Server) authoritative(resp *mdns.Msg, name string, qtype uint16, st *qstate, depth int) {
	resp.Authoritative = true
	rrs, exists := s.lookupName(name)
	if !exists {
		if depth == 0 {
			resp.Rcode = mdns.RcodeNameError
		}
		resp.Ns = []mdns.RR{s.negSOA}
		return
	}
	if len(rrs) == 1 && qtype != mdns.TypeCNAME {
		if c, ok := rrs[0].(*mdns.CNAME); ok {
			resp.Answer = append(resp.Answer, c)
			s.chase(resp, c.Target, qtype, st, depth)
			return
		}
	}
	n := len(resp.Answer)
	if qtype == mdns.TypeANY {
		resp.Answer = appendAny(resp.Answer, rrs)
	} else {
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype {
				resp.Answer = append(resp.Answer, rr)
			}
		}
	}
	if len(resp.Answer) == n {
		// NODATA: the name exists with other types, or is an empty
		// non-terminal.
		resp.Ns = []mdns.RR{s.negSOA}
		return
	}
	if qtype == mdns.TypeSRV {
		for _, rr := range resp.Answer[n:] {
			t, _ := s.idx.lookup(rr.(*mdns.SRV).Target)
			for _, a := range t {
				if h := a.Header().Rrtype; h == mdns.TypeA || h == mdns.TypeAAAA {
					resp.Extra = appendUnique(resp.Extra, a)
				}
			}
		}
	}
}

// appendAny answers ANY minimally (RFC 8482 4.1 allows a subset): the
// address records, which old clients asking ANY want, else the first RRset.
func appendAny(dst, rrs []mdns.RR) []mdns.RR {
	n := len(dst)
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; t == mdns.TypeA || t == mdns.TypeAAAA {
			dst = append(dst, rr)
		}
	}
	if len(dst) > n || len(rrs) == 0 {
		return dst
	}
	first := rrs[0].Header().Rrtype
	for _, rr := range rrs {
		if rr.Header().Rrtype == first {
			dst = append(dst, rr)
		}
	}
	return dst
}

func appendUnique(dst []mdns.RR, rr mdns.RR) []mdns.RR {
	for _, have := range dst {
		if have == rr {
			return dst
		}
	}
	return append(dst, rr)
}

// chase follows a CNAME: inside the zone from the index; outside it, when
// the client asked for recursion, through the forwarder and its cache (as the
// specification's ExternalName example shows), giving up quietly on errors
// so the client can chase the CNAME itself.
func (s *Server) chase(resp *mdns.Msg, target string, qtype uint16, st *qstate, depth int) {
	target = strings.ToLower(target)
	if depth >= maxCNAMEChain {
		return
	}
	if s.inZone(target) {
		sub := new(mdns.Msg)
		s.authoritative(sub, target, qtype, st, depth+1)
		resp.Answer = append(resp.Answer, sub.Answer...)
		resp.Extra = append(resp.Extra, sub.Extra...)
		return
	}
	// The answer now depends on RD and on upstream TTLs: the packed
	// answers are keyed by the question alone.
	st.cacheable = false
	if !st.rd || qtype == mdns.TypeANY || len(s.cfg.Upstreams) == 0 {
		return
	}
	up := s.fwd.cached(target, qtype, false, false)
	if up == nil {
		if !st.upstreamOK {
			st.needUpstream = true
			return
		}
		var err error
		up, err = s.fwd.resolve(context.Background(), target, qtype, false, false)
		if err != nil {
			return
		}
	}
	if up.Rcode != mdns.RcodeSuccess {
		return
	}
	resp.Answer = append(resp.Answer, up.Answer...)
}

// forward answers a name outside the zone from upstream.
func (s *Server) forward(resp *mdns.Msg, name string, qtype uint16, opt *mdns.OPT, cd bool, st *qstate) {
	if len(s.cfg.Upstreams) == 0 {
		resp.Rcode = mdns.RcodeServerFailure
		return
	}
	do := opt != nil && opt.Do()
	up := s.fwd.cached(name, qtype, do, cd)
	if up == nil {
		if !st.upstreamOK {
			st.needUpstream = true
			return
		}
		var err error
		up, err = s.fwd.resolve(context.Background(), name, qtype, do, cd)
		if err != nil {
			s.log.Debug("dns: forward", "name", name, "err", err)
			resp.Rcode = mdns.RcodeServerFailure
			return
		}
	}
	resp.Rcode = up.Rcode
	resp.AuthenticatedData = up.AuthenticatedData
	resp.Answer, resp.Ns, resp.Extra = up.Answer, up.Ns, up.Extra
}
