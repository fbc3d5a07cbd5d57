package dns

import (
	"fmt"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	fuzzOnce   sync.Once
	fuzzServer *Server
)

// fuzzSrv is a synced server over the fixture with no upstreams (so the
// fuzzer never sends a packet) whose handler is called directly.
func fuzzSrv(f *testing.F) *Server {
	fuzzOnce.Do(func() {
		s, err := New(Config{Client: fakeClient(), Upstreams: []string{}, Registerer: prometheus.NewRegistry(), Listen: []string{"127.0.0.1:0"}})
		if err != nil {
			f.Fatal(err)
		}
		svcs, slices, pods := fixture()
		for _, svc := range svcs {
			var sl = slices[:0:0]
			for _, x := range slices {
				if x.Labels["kubernetes.io/service-name"] == svc.Name && x.Namespace == svc.Namespace {
					sl = append(sl, x)
				}
			}
			s.idx.setSource("svc/"+svc.Namespace+"/"+svc.Name, serviceRecords(s.cfg.Zone, s.cfg.TTL, svc, sl))
		}
		for _, p := range pods {
			s.w.podEvent(p, false)
		}
		s.ready.Store(true)
		fuzzServer = s
	})
	return fuzzServer
}

// FuzzHandler feeds arbitrary bytes as a DNS message through the same steps
// as the server: parse (miekg/dns), handle, pack. The answer must pack and
// fit the UDP limit.
func FuzzHandler(f *testing.F) {
	s := fuzzSrv(f)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"svc1.testns.svc.cluster.local.", mdns.TypeA},
		{"_http._tcp.hdls1.testns.svc.cluster.local.", mdns.TypeSRV},
		{"ext2.testns.svc.cluster.local.", mdns.TypeA},
		{"10-244-1-1.testns.pod.cluster.local.", mdns.TypeA},
		{"1.1.244.10.in-addr.arpa.", mdns.TypePTR},
		{"example.org.", mdns.TypeANY},
	} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b)
		m.SetEdns0(4096, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(b); err != nil {
			return // miekg/dns answers FORMERR itself
		}
		for _, udp := range []bool{true, false} {
			resp := s.handle(req, udp)
			out, err := resp.Pack()
			if err != nil {
				t.Fatalf("answer does not pack: %v\n%v", err, resp)
			}
			if udp && len(out) > maxUDPResponseSize && len(out) > mdns.MinMsgSize {
				t.Fatalf("UDP answer of %d bytes", len(out))
			}
		}
	})
}

// FuzzUDPPath runs arbitrary bytes through the UDP read loop's steps: the
// header checks, miekg/dns's parser and Server.answer, and, for the plain
// queries the fast path takes, the packed answer. A packed answer must say
// exactly what the computed one says (ID, flags, question, records, OPT).
func FuzzUDPPath(f *testing.F) {
	s := fuzzSrv(f)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"svc1.testns.svc.cluster.local.", mdns.TypeA},
		{"SVC1.testns.svc.cluster.local.", mdns.TypeA},
		{"nosuch.testns.svc.cluster.local.", mdns.TypeAAAA},
		{"_http._tcp.hdls1.testns.svc.cluster.local.", mdns.TypeSRV},
		{"ext.testns.svc.cluster.local.", mdns.TypeA},
		{"ext2.testns.svc.cluster.local.", mdns.TypeA},
		{"10-244-1-1.testns.pod.cluster.local.", mdns.TypeA},
		{"1.1.244.10.in-addr.arpa.", mdns.TypePTR},
		{"cluster.local.", mdns.TypeSOA},
		{"example.org.", mdns.TypeANY},
	} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b)
		m.RecursionDesired, m.CheckingDisabled = false, true
		m.SetEdns0(600, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < headerLen || b[2]&0x80 != 0 {
			return // dropped unanswered
		}
		req, rej := acceptQuery(b)
		if rej != nil {
			out, err := rej.Pack()
			if err != nil || len(out) > headerLen {
				t.Fatalf("rejection: %v, %d bytes (want a bare header)", err, len(out))
			}
			return
		}
		resp, st := s.answer(req, true, false)
		if st.needUpstream {
			t.Fatalf("wants an upstream, but none is configured")
		}
		out, err := resp.Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, resp)
		}
		if len(out) > maxUDPResponseSize && len(out) > mdns.MinMsgSize {
			t.Fatalf("UDP answer of %d bytes", len(out))
		}
		qend, opt, plain := parsePlainQuery(b)
		if !plain || !st.cacheable {
			return
		}
		l := s.newUDPLoop(nil)
		l.remember(b[headerLen:qend], resp, 0, req.Question[0].Qtype)
		e := l.cache[string(b[headerLen:qend])]
		if e == nil || len(e.wire)+opt.len() > opt.limit() {
			return // the fast path would not use it
		}
		fast := new(mdns.Msg)
		if err := fast.Unpack(l.fastReply(e, b, opt)); err != nil {
			t.Fatalf("packed answer does not parse: %v", err)
		}
		want := new(mdns.Msg)
		if err := want.Unpack(out); err != nil {
			t.Fatal(err)
		}
		if fast.MsgHdr != want.MsgHdr {
			t.Errorf("header %+v, computed %+v", fast.MsgHdr, want.MsgHdr)
		}
		for _, sec := range []struct {
			name    string
			got, wt []mdns.RR
		}{{"question", nil, nil}, {"answer", fast.Answer, want.Answer}, {"authority", fast.Ns, want.Ns}, {"additional", fast.Extra, want.Extra}} {
			if sec.name == "question" {
				if len(fast.Question) != 1 || len(want.Question) != 1 || fast.Question[0] != want.Question[0] {
					t.Errorf("question %v, computed %v", fast.Question, want.Question)
				}
				continue
			}
			if g, w := fmt.Sprint(sec.got), fmt.Sprint(sec.wt); g != w {
				t.Errorf("%s %s, computed %s", sec.name, g, w)
			}
		}
	})
}
