package dns

import (
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
