package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
)

// UDP is served by one read loop per SO_REUSEPORT socket, one socket per
// CPU (the kernel spreads clients over them by a hash of the 4-tuple), rather
// than by miekg/dns, which starts a goroutine and allocates a fresh buffer,
// session and message for every packet. Each loop reads a query, answers it
// and writes the answer itself, so a cluster answer costs two system calls
// and no allocation:
//
//   - The fast path keeps, per loop (so no lock is shared between cores),
//     the packed answers to plain queries (one lower-case question, at most
//     a bare OPT) keyed by the question's wire bytes, tagged with the
//     index generation they were computed from. A hit copies the bytes,
//     patches ID, RD, CD and the OPT, and writes. Any index change bumps
//     the generation, so the next query after a watch event recomputes.
//   - Everything else is unpacked with miekg/dns and answered by
//     Server.answer on the loop; a query that would wait on an upstream
//     resolver (an uncached outside name) is handed to a goroutine, at most
//     MaxForwards at once, so a slow upstream never stalls cluster answers.

// udpConn is one UDP socket of a listen address.
type udpConn struct {
	c *net.UDPConn
	// pktinfo is set for wildcard addresses: the loop reads each query's
	// destination address (IP_PKTINFO / IPV6_PKTINFO) and sends the answer
	// from it, or a client (or the datapath's reverse translation) that
	// sent to one of the node's addresses would see the answer come from
	// another and drop it.
	pktinfo bool
}

const (
	packedCacheSize = 8192 // answers per read loop; about 1 MB with typical sizes
	recvBatchSize   = 16   // datagrams per recvmmsg
	optLen          = 11   // a bare OPT record: root, type, class, TTL, RDLENGTH
	headerLen       = 12
)

// packedAnswer is a packed answer with ID 0, RD and CD clear and no OPT.
type packedAnswer struct {
	gen   uint64
	wire  []byte
	qtype uint16
	rcode int
}

// udpLoop is the state of one read loop; only its goroutine touches it.
type udpLoop struct {
	s     *Server
	u     *udpConn
	out   []byte
	soob  []byte
	cache map[string]*packedAnswer
}

func (s *Server) newUDPLoop(u *udpConn) *udpLoop {
	return &udpLoop{
		s:     s,
		u:     u,
		out:   make([]byte, 0, readUDPSize),
		soob:  make([]byte, 0, 64),
		cache: make(map[string]*packedAnswer),
	}
}

// serveUDP runs the read loop until the socket is closed. Handed-off
// queries are tracked by async.
func (s *Server) serveUDP(u *udpConn, async *sync.WaitGroup) {
	l := s.newUDPLoop(u)
	rc, err := u.c.SyscallConn()
	if err != nil {
		s.log.Error("dns: udp socket", "addr", u.c.LocalAddr(), "err", err)
		return
	}
	batch := newRecvBatch(rc, recvBatchSize, readUDPSize, 128)
	for {
		n, err := batch.recv()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Nothing a peer sends makes reads fail for long; do not
			// spin on whatever this is.
			s.log.Warn("dns: read udp", "addr", u.c.LocalAddr(), "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for i := range n {
			b, trunc, from, oob := batch.packet(i)
			if trunc {
				// Larger than any query we accept: cut, so it cannot parse.
				s.m.dropped.WithLabelValues("oversized").Inc()
				continue
			}
			var dst netip.Addr
			if u.pktinfo {
				dst = pktinfoDst(oob)
			}
			l.packet(b, from, dst, async)
		}
		// A loop with queries always waiting would keep its P until preempted (10 ms), and
		// on a small node the goroutines it shares the cores with (the other loops, the
		// informers, a co-located client) would wait that long: yield after every batch.
		runtime.Gosched()
	}
}

func (l *udpLoop) packet(b []byte, from netip.AddrPort, dst netip.Addr, async *sync.WaitGroup) {
	s := l.s
	start := time.Now()
	if len(b) < headerLen {
		// No header to answer with: any answer could only be used to
		// amplify (miekg/dns does the same).
		s.m.dropped.WithLabelValues("short").Inc()
		return
	}
	if b[2]&0x80 != 0 {
		// A response sent to us: answering could start a loop.
		s.m.dropped.WithLabelValues("response").Inc()
		return
	}
	if !s.limit.allow(from.Addr().Unmap()) {
		l.slow(b, from, dst, start, false, async)
		return
	}
	qend, opt, plain := parsePlainQuery(b)
	if plain {
		e := l.cache[string(b[headerLen:qend])]
		if e != nil && e.gen == s.idx.gen.Load() && len(e.wire)+opt.len() <= opt.limit() {
			s.m.packedHits.Inc()
			s.m.count(e.qtype, e.rcode)
			l.write(l.fastReply(e, b, opt), from, dst)
			s.m.took(start)
			return
		}
	}
	l.slow(b, from, dst, start, true, async)
}

// slow answers through miekg/dns's parser and Server.answer.
func (l *udpLoop) slow(b []byte, from netip.AddrPort, dst netip.Addr, start time.Time, allowed bool, async *sync.WaitGroup) {
	s := l.s
	req, rej := acceptQuery(b)
	if rej != nil {
		s.m.answered(rej, rej.Rcode)
		l.write(l.pack(rej), from, dst)
		s.m.took(start)
		return
	}
	if !allowed {
		resp := s.refuseRateLimited(req)
		s.m.answered(req, resp.Rcode)
		l.write(l.pack(resp), from, dst)
		s.m.took(start)
		return
	}
	gen := s.idx.gen.Load() // before the lookups, see index.gen
	resp, st := s.answer(req, true, false)
	if st.needUpstream {
		select {
		case s.waiting <- struct{}{}:
		default:
			// As many queries as MaxForwards already wait on upstreams.
			resp = new(mdns.Msg)
			resp.SetRcode(req, mdns.RcodeServerFailure)
			s.m.answered(req, resp.Rcode)
			l.write(l.pack(resp), from, dst)
			s.m.took(start)
			return
		}
		async.Add(1)
		go func() {
			defer async.Done()
			defer func() { <-s.waiting }()
			resp, _ := s.answer(req, true, true)
			out, err := resp.Pack()
			if err != nil {
				s.log.Warn("dns: pack answer", "question", req.Question, "err", err)
				return
			}
			s.m.answered(req, resp.Rcode)
			writeUDP(l.u, out, from, dst, make([]byte, 0, 64), s)
			s.m.took(start)
		}()
		return
	}
	s.m.answered(req, resp.Rcode)
	l.write(l.pack(resp), from, dst)
	s.m.took(start)
	if st.cacheable {
		if qend, _, plain := parsePlainQuery(b); plain {
			l.remember(b[headerLen:qend], resp, gen, req.Question[0].Qtype)
		}
	}
}

// acceptQuery unpacks a query, or returns the answer to a message that is
// not one, as miekg/dns's DefaultMsgAcceptFunc decides: NOTIMP for other
// opcodes than QUERY and NOTIFY, FORMERR for unexpected section counts and
// for what does not parse. The rejection carries the header only.
func acceptQuery(b []byte) (*mdns.Msg, *mdns.Msg) {
	id := uint16(b[0])<<8 | uint16(b[1])
	opcode := int(b[2]>>3) & 0xF
	reject := func(rcode int) *mdns.Msg {
		m := new(mdns.Msg)
		m.Id, m.Response, m.RecursionDesired = id, true, b[2]&0x01 != 0
		m.Opcode, m.Rcode = mdns.OpcodeQuery, rcode
		if rcode == mdns.RcodeNotImplemented {
			m.Opcode = opcode
		}
		return m
	}
	if opcode != mdns.OpcodeQuery && opcode != mdns.OpcodeNotify {
		return nil, reject(mdns.RcodeNotImplemented)
	}
	qd, an, ns, ar := be16(b[4:]), be16(b[6:]), be16(b[8:]), be16(b[10:])
	if qd != 1 || an > 1 || ns > 1 || ar > 2 {
		return nil, reject(mdns.RcodeFormatError)
	}
	req := new(mdns.Msg)
	if err := req.Unpack(b); err != nil {
		return nil, reject(mdns.RcodeFormatError)
	}
	return req, nil
}

func (l *udpLoop) pack(m *mdns.Msg) []byte {
	out, err := m.PackBuffer(l.out[:cap(l.out)])
	if err != nil {
		l.s.log.Warn("dns: pack answer", "question", m.Question, "err", err)
		return nil
	}
	return out
}

func (l *udpLoop) write(b []byte, to netip.AddrPort, dst netip.Addr) {
	if b == nil {
		return
	}
	writeUDP(l.u, b, to, dst, l.soob, l.s)
}

func writeUDP(u *udpConn, b []byte, to netip.AddrPort, dst netip.Addr, oobBuf []byte, s *Server) {
	var oob []byte
	if u.pktinfo && dst.IsValid() {
		oob = appendPktinfo(oobBuf[:0], dst)
	}
	if _, _, err := u.c.WriteMsgUDPAddrPort(b, oob, to); err != nil {
		s.log.Debug("dns: write answer", "client", to, "err", err)
	}
}

// fastReply builds the answer to query q from a packed answer.
func (l *udpLoop) fastReply(e *packedAnswer, q []byte, opt plainOPT) []byte {
	out := append(l.out[:0], e.wire...)
	out[0], out[1] = q[0], q[1]
	out[2] |= q[2] & 0x01 // RD
	out[3] |= q[3] & 0x10 // CD
	if opt.present {
		var do byte
		if opt.do {
			do = 0x80
		}
		out = append(out, 0, 0, 41, byte(maxUDPResponseSize>>8), byte(maxUDPResponseSize&0xff), 0, 0, do, 0, 0, 0)
		ar := be16(out[10:]) + 1
		out[10], out[11] = byte(ar>>8), byte(ar)
	}
	return out
}

// remember packs resp without its OPT and with ID, RD and CD clear, and
// keeps it for the question q (wire bytes) until the index moves past gen.
func (l *udpLoop) remember(q []byte, resp *mdns.Msg, gen uint64, qtype uint16) {
	m := *resp
	m.Id, m.RecursionDesired, m.CheckingDisabled = 0, false, false
	m.Extra = make([]mdns.RR, 0, len(resp.Extra))
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != mdns.TypeOPT {
			m.Extra = append(m.Extra, rr)
		}
	}
	m.Compress = true
	wire, err := m.Pack()
	if err != nil || len(wire) > maxUDPResponseSize || len(wire) < headerLen+len(q) || string(wire[headerLen:headerLen+len(q)]) != string(q) {
		// The question must come back byte for byte, as the client sent it.
		return
	}
	if e := l.cache[string(q)]; e != nil {
		*e = packedAnswer{gen: gen, wire: wire, qtype: qtype, rcode: m.Rcode}
		return
	}
	if len(l.cache) >= packedCacheSize {
		// Map iteration starts at a random place: random eviction keeps
		// memory bounded under a flood of distinct names.
		for k := range l.cache {
			delete(l.cache, k)
			break
		}
	}
	l.cache[string(q)] = &packedAnswer{gen: gen, wire: wire, qtype: qtype, rcode: m.Rcode}
}

// plainOPT is the bare OPT record of a plain query.
type plainOPT struct {
	present bool
	do      bool
	size    uint16
}

func (o plainOPT) len() int {
	if o.present {
		return optLen
	}
	return 0
}

// limit is the largest UDP answer the client takes, as in Server.answer.
func (o plainOPT) limit() int {
	if !o.present {
		return mdns.MinMsgSize
	}
	return min(max(int(o.size), mdns.MinMsgSize), maxUDPResponseSize)
}

// parsePlainQuery recognises the queries the fast path answers: QUERY
// opcode, one IN question whose name is uncompressed and has no upper-case
// letters (so the packed answer's names, compressed against the question,
// read the same), and nothing else but at most one OPT record of version 0
// without options. qend is the end of the question.
func parsePlainQuery(b []byte) (qend int, opt plainOPT, ok bool) {
	if len(b) < headerLen+5 || b[2]&0xf8 != 0 {
		return 0, opt, false
	}
	if be16(b[4:]) != 1 || be16(b[6:]) != 0 || be16(b[8:]) != 0 {
		return 0, opt, false
	}
	ar := be16(b[10:])
	if ar > 1 {
		return 0, opt, false
	}
	i := headerLen
	for {
		if i >= len(b) {
			return 0, opt, false
		}
		n := int(b[i])
		if n == 0 {
			i++
			break
		}
		if n > 63 || i+1+n > len(b) || i+1+n-headerLen > 254 {
			return 0, opt, false
		}
		for _, c := range b[i+1 : i+1+n] {
			if 'A' <= c && c <= 'Z' {
				return 0, opt, false
			}
		}
		i += 1 + n
	}
	if i+4 > len(b) || be16(b[i+2:]) != mdns.ClassINET {
		return 0, opt, false
	}
	qend = i + 4
	if ar == 0 {
		return qend, opt, qend == len(b)
	}
	j := qend
	if len(b) != j+optLen || b[j] != 0 || be16(b[j+1:]) != mdns.TypeOPT ||
		b[j+5] != 0 || b[j+6] != 0 || be16(b[j+9:]) != 0 {
		return 0, opt, false
	}
	return qend, plainOPT{present: true, do: b[j+7]&0x80 != 0, size: be16(b[j+3:])}, true
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// listenUDP binds one SO_REUSEPORT UDP socket; on a wildcard address it
// asks for each packet's destination address.
func listenUDP(addr string, wildcard bool) (*udpConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		if err := reusePort(network, address, c); err != nil {
			return err
		}
		if wildcard {
			return setPktinfo(c)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	return &udpConn{c: pc.(*net.UDPConn), pktinfo: wildcard}, nil
}

func isWildcard(host string) bool {
	ip, err := netip.ParseAddr(host)
	return host == "" || (err == nil && ip.IsUnspecified())
}
