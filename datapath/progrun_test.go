package datapath

import (
	"bytes"
	"encoding/binary"
	"testing"

	"net"

	"github.com/cilium/ebpf"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

const (
	verdictNext     = 0xffffffff // TC_ACT_UNSPEC (-1): untouched
	verdictPass     = 0
	verdictDrop     = 2
	verdictRedirect = 7
)

// progRunFixture programs a few Services for the packet tests:
//   - 10.96.0.10:80/TCP -> 10.244.1.10:8080, 10.96.0.10:53/UDP -> 10.244.1.11:5353
//   - 10.96.0.20:80/TCP with no endpoints
//   - 10.96.0.30:80/TCP NodePort 30080 -> 10.244.1.12:8080 (on this node)
func progRunFixture(t *testing.T) *Datapath {
	privtest.Require(t, privtest.Root, privtest.BPF)
	d := newTestDatapath(t, nil, Config{NodeIPs: []net.IP{ip4("192.168.50.1")}})
	web := []svcPort{{name: "http", port: 80, target: 8080}, {name: "dns", port: 53, target: 5353, proto: corev1.ProtocolUDP}}
	if err := d.UpsertService(makeService("default", "web", "10.96.0.10", web...), []*discoveryv1.EndpointSlice{
		makeSlice("default", "web", "web-1", web[:1], ep{addr: "10.244.1.10"}),
		makeSlice("default", "web", "web-2", web[1:], ep{addr: "10.244.1.11"}),
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.UpsertService(makeService("default", "empty", "10.96.0.20", svcPort{name: "http", port: 80, target: 8080},
		svcPort{name: "dns", port: 53, target: 5353, proto: corev1.ProtocolUDP}), nil); err != nil {
		t.Fatal(err)
	}
	np := []svcPort{{name: "http", port: 80, target: 8080, nodePort: 30080}}
	if err := d.UpsertService(makeService("default", "np", "10.96.0.30", np...), []*discoveryv1.EndpointSlice{
		makeSlice("default", "np", "np-1", np, ep{addr: "10.244.1.12", node: "node-a"}),
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestE2EProgRun(t *testing.T) {
	d := progRunFixture(t)
	o := d.objs
	client := "10.244.0.5"
	syn := func(dst string, dport uint16) pktSpec {
		return pktSpec{src: client, dst: dst, sport: 40000, dport: dport, proto: 6, tcpFlags: tcpSYN, seq: 1000}
	}
	with := func(p pktSpec, f func(*pktSpec)) pktSpec { f(&p); return p }
	toBackend := func(p pktSpec) pktSpec {
		p.dst, p.dport = "10.244.1.10", 8080
		return p
	}
	cases := []struct {
		name    string
		prog    *ebpf.Program
		in      pktSpec
		verdict uint32
		out     *pktSpec // nil: unchanged
		raw     []byte   // instead of in, for hand-built garbage
		drop    DropReason
		// icmpQuote: the output must be ICMP port unreachable quoting the input.
		icmpQuote bool
	}{
		{name: "tcp syn dnat", prog: o.podIngress, in: syn("10.96.0.10", 80), verdict: verdictPass, out: ptr(toBackend(syn("10.96.0.10", 80)))},
		{name: "tcp ack same backend", prog: o.podIngress, in: with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpACK; p.seq = 1001; p.ack = 5 }), verdict: verdictPass,
			out: ptr(toBackend(with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpACK; p.seq = 1001; p.ack = 5 })))},
		{name: "tcp psh with payload", prog: o.podIngress, in: with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpACK | tcpPSH; p.payload = []byte("GET / HTTP/1.0\r\n\r\n") }), verdict: verdictPass,
			out: ptr(toBackend(with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpACK | tcpPSH; p.payload = []byte("GET / HTTP/1.0\r\n\r\n") })))},
		{name: "tcp fin", prog: o.podIngress, in: with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpFIN | tcpACK }), verdict: verdictPass,
			out: ptr(toBackend(with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpFIN | tcpACK })))},
		{name: "tcp rst", prog: o.podIngress, in: with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpRST }), verdict: verdictPass,
			out: ptr(toBackend(with(syn("10.96.0.10", 80), func(p *pktSpec) { p.tcpFlags = tcpRST })))},
		{name: "reply reverse nat", prog: o.podEgress, in: pktSpec{src: "10.244.1.10", dst: client, sport: 8080, dport: 40000, proto: 6, tcpFlags: tcpSYN | tcpACK, seq: 5, ack: 1001},
			verdict: verdictPass, out: &pktSpec{src: "10.96.0.10", dst: client, sport: 80, dport: 40000, proto: 6, tcpFlags: tcpSYN | tcpACK, seq: 5, ack: 1001}},
		{name: "reply untracked untouched", prog: o.podEgress, in: pktSpec{src: "10.244.1.10", dst: client, sport: 8080, dport: 40001, proto: 6, tcpFlags: tcpACK}, verdict: verdictNext},
		{name: "udp dnat", prog: o.podIngress, in: pktSpec{src: client, dst: "10.96.0.10", sport: 40002, dport: 53, proto: 17, payload: []byte("query")}, verdict: verdictPass,
			out: &pktSpec{src: client, dst: "10.244.1.11", sport: 40002, dport: 5353, proto: 17, payload: []byte("query")}},
		{name: "udp without checksum stays without", prog: o.podIngress, in: pktSpec{src: client, dst: "10.96.0.10", sport: 40003, dport: 53, proto: 17, udpNoCsum: true, payload: []byte("q")}, verdict: verdictPass,
			out: &pktSpec{src: client, dst: "10.244.1.11", sport: 40003, dport: 5353, proto: 17, udpNoCsum: true, payload: []byte("q")}},
		{name: "udp reply reverse nat", prog: o.podEgress, in: pktSpec{src: "10.244.1.11", dst: client, sport: 5353, dport: 40002, proto: 17, payload: []byte("answer")}, verdict: verdictPass,
			out: &pktSpec{src: "10.96.0.10", dst: client, sport: 53, dport: 40002, proto: 17, payload: []byte("answer")}},
		{name: "icmp to vip passes untouched", prog: o.podIngress, in: pktSpec{src: client, dst: "10.96.0.10", proto: 1, payload: []byte("ping")}, verdict: verdictNext},
		{name: "non-service traffic untouched", prog: o.podIngress, in: syn("10.244.1.10", 8080), verdict: verdictNext},
		{name: "vip on other port untouched", prog: o.podIngress, in: syn("10.96.0.10", 81), verdict: verdictNext},
		{name: "wrong tcp checksum stays wrong", prog: o.podIngress, in: with(syn("10.96.0.10", 80), func(p *pktSpec) { p.sport = 40010; p.badL4Csum = true }), verdict: verdictPass,
			out: ptr(toBackend(with(syn("10.96.0.10", 80), func(p *pktSpec) { p.sport = 40010; p.badL4Csum = true })))},
		{name: "first fragment to vip dropped", prog: o.podIngress, in: with(syn("10.96.0.10", 80), func(p *pktSpec) { p.sport = 40011; p.fragOff = 0x2000 }), verdict: verdictDrop, drop: DropFragment},
		{name: "later fragment untouched", prog: o.podIngress, in: with(syn("10.96.0.10", 80), func(p *pktSpec) { p.fragOff = 185; p.payload = make([]byte, 64) }), verdict: verdictNext},
		{name: "fragment to non-service untouched", prog: o.podIngress, in: with(syn("10.244.1.10", 8080), func(p *pktSpec) { p.fragOff = 0x2000 }), verdict: verdictNext},
		{name: "zero backends: tcp syn answered with rst", prog: o.podIngress, in: with(syn("10.96.0.20", 80), func(p *pktSpec) { p.sport = 40020 }), verdict: verdictRedirect, drop: DropNoBackend,
			out: &pktSpec{src: "10.96.0.20", dst: client, sport: 80, dport: 40020, proto: 6, tcpFlags: tcpRST | tcpACK, ack: 1001, srcMAC: macB, dstMAC: macA}},
		{name: "zero backends: udp answered with icmp port unreachable", prog: o.podIngress, in: pktSpec{src: client, dst: "10.96.0.20", sport: 40021, dport: 53, proto: 17, payload: []byte("query")},
			verdict: verdictRedirect, drop: DropNoBackend, icmpQuote: true},
		{name: "truncated tcp header untouched", prog: o.podIngress, raw: buildPacket(syn("10.96.0.10", 80))[:14+20+10], verdict: verdictNext},
		{name: "nodeport local backend", prog: o.nodePortIngress, in: pktSpec{src: "192.168.50.9", dst: "192.168.50.1", sport: 41000, dport: 30080, proto: 6, tcpFlags: tcpSYN}, verdict: verdictPass,
			out: &pktSpec{src: "192.168.50.9", dst: "10.244.1.12", sport: 41000, dport: 8080, proto: 6, tcpFlags: tcpSYN}},
		{name: "nodeport local reply reverse nat on device egress", prog: o.nodePortEgress, in: pktSpec{src: "10.244.1.12", dst: "192.168.50.9", sport: 8080, dport: 41000, proto: 6, tcpFlags: tcpSYN | tcpACK}, verdict: verdictPass,
			out: &pktSpec{src: "192.168.50.1", dst: "192.168.50.9", sport: 30080, dport: 41000, proto: 6, tcpFlags: tcpSYN | tcpACK}},
		{name: "clusterip not served on devices", prog: o.nodePortIngress, in: syn("10.96.0.10", 80), verdict: verdictNext},
		{name: "non-ipv4 untouched", prog: o.podIngress, raw: append(append(append([]byte{}, macB...), macA...), append([]byte{0x08, 0x06}, make([]byte, 28)...)...), verdict: verdictNext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.raw
			if in == nil {
				in = buildPacket(c.in)
			}
			before := dropCount(t, d, c.drop)
			out := make([]byte, len(in)+64)
			ret, err := c.prog.Run(&ebpf.RunOptions{Data: in, DataOut: out})
			if err != nil {
				t.Fatalf("prog run: %v", err)
			}
			if ret != c.verdict {
				t.Fatalf("verdict %d, want %d", int32(ret), int32(c.verdict))
			}
			want := in
			if c.icmpQuote {
				want = icmpUnreachFor(in)
			}
			if c.out != nil {
				want = buildPacket(*c.out)
			}
			got := out[:len(want)]
			if c.in.badL4Csum {
				// The checksum stays wrong by the same amount: compare the residuals.
				if l4Residual(got) != l4Residual(in) {
					t.Fatalf("checksum error not preserved: residual %x, input %x", l4Residual(got), l4Residual(in))
				}
				got, want = zeroL4Csum(got), zeroL4Csum(want)
			}
			if c.verdict != verdictDrop && !bytes.Equal(got, want) {
				t.Fatalf("output packet differs\n got %x\nwant %x", got, want)
			}
			if c.out != nil {
				ipOK, l4OK := checksumsOK(got)
				if !ipOK || l4OK == c.in.badL4Csum {
					t.Fatalf("checksums: ip ok %v, l4 ok %v (input l4 bad: %v)", ipOK, l4OK, c.in.badL4Csum)
				}
			}
			if c.drop != 0 {
				if after := dropCount(t, d, c.drop); after != before+1 {
					t.Fatalf("drop counter %v: %d -> %d, want +1", c.drop, before, after)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func dropCount(t *testing.T, d *Datapath, r DropReason) uint64 {
	if r == 0 {
		return 0
	}
	var vals []uint64
	if err := d.objs.drops.Lookup(uint32(-r), &vals); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, v := range vals {
		n += v
	}
	return n
}

// l4Residual is the folded sum over pseudo header and segment: 0 when valid, and unchanged
// by a correct incremental update when the checksum was wrong to begin with.
func l4Residual(b []byte) uint16 {
	ip := b[14:]
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	l4 := ip[20:tot]
	var ps [12]byte
	copy(ps[0:], ip[12:20])
	ps[9] = ip[9]
	binary.BigEndian.PutUint16(ps[10:], uint16(len(l4)))
	return fold(csum(csum(0, ps[:]), l4))
}

func zeroL4Csum(b []byte) []byte {
	c := append([]byte{}, b...)
	off := 14 + 20 + 16
	if c[14+9] == 17 {
		off = 14 + 20 + 6
	}
	c[off], c[off+1] = 0, 0
	return c
}

// icmpUnreachFor builds the ICMP port unreachable the datapath answers for packet in.
func icmpUnreachFor(in []byte) []byte {
	body := make([]byte, 8+28)
	body[0], body[1] = 3, 3
	copy(body[8:], in[14:14+28])
	binary.BigEndian.PutUint16(body[2:], fold(csum(0, body)))
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(body)))
	ip[8], ip[9] = 64, 1
	copy(ip[12:16], in[14+16:14+20])
	copy(ip[16:20], in[14+12:14+16])
	binary.BigEndian.PutUint16(ip[10:], fold(csum(0, ip)))
	eth := append(append(append([]byte{}, in[6:12]...), in[0:6]...), 0x08, 0x00)
	return append(append(eth, ip...), body...)
}
