package datapath

import (
	"encoding/binary"
	"net"
)

// Hand-built Ethernet/IPv4/TCP/UDP packets for BPF_PROG_RUN tests.

type pktSpec struct {
	src, dst     string
	sport, dport uint16
	proto        uint8 // 6, 17 or 1
	tcpFlags     uint8
	seq, ack     uint32
	payload      []byte
	fragOff      uint16 // raw IPv4 frag_off field (flags<<13 | offset)
	badL4Csum    bool   // corrupt the L4 checksum
	udpNoCsum    bool   // UDP checksum 0 ("none")
	srcMAC       net.HardwareAddr
	dstMAC       net.HardwareAddr
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

func csum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func buildPacket(p pktSpec) []byte {
	src, dst := net.ParseIP(p.src).To4(), net.ParseIP(p.dst).To4()
	var l4 []byte
	switch p.proto {
	case 6:
		l4 = make([]byte, 20+len(p.payload))
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
		binary.BigEndian.PutUint32(l4[4:], p.seq)
		binary.BigEndian.PutUint32(l4[8:], p.ack)
		l4[12] = 5 << 4
		l4[13] = p.tcpFlags
		copy(l4[20:], p.payload)
	case 17:
		l4 = make([]byte, 8+len(p.payload))
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		copy(l4[8:], p.payload)
	case 1:
		l4 = make([]byte, 8+len(p.payload))
		l4[0] = 8 // echo request
		copy(l4[8:], p.payload)
	}
	// L4 checksum over the pseudo header (not for later fragments: computed as if whole).
	var ps [12]byte
	copy(ps[0:], src)
	copy(ps[4:], dst)
	ps[9] = p.proto
	binary.BigEndian.PutUint16(ps[10:], uint16(len(l4)))
	switch p.proto {
	case 6:
		c := fold(csum(csum(0, ps[:]), l4))
		if p.badL4Csum {
			c ^= 0x1234
		}
		binary.BigEndian.PutUint16(l4[16:], c)
	case 17:
		if !p.udpNoCsum {
			c := fold(csum(csum(0, ps[:]), l4))
			if c == 0 {
				c = 0xffff
			}
			if p.badL4Csum {
				c ^= 0x1234
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
	case 1:
		binary.BigEndian.PutUint16(l4[2:], fold(csum(0, l4)))
	}
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(ip[6:], p.fragOff)
	ip[8] = 64
	ip[9] = p.proto
	copy(ip[12:], src)
	copy(ip[16:], dst)
	binary.BigEndian.PutUint16(ip[10:], fold(csum(0, ip)))

	sm, dm := p.srcMAC, p.dstMAC
	if sm == nil {
		sm = macA
	}
	if dm == nil {
		dm = macB
	}
	eth := make([]byte, 14)
	copy(eth[0:], dm)
	copy(eth[6:], sm)
	binary.BigEndian.PutUint16(eth[12:], 0x0800)
	out := append(eth, ip...)
	if p.fragOff&0x1fff != 0 {
		return append(out, p.payload...) // later fragment: no L4 header
	}
	return append(out, l4...)
}

// checksumsOK reports whether the IPv4 header and TCP/UDP checksums of a packet verify.
func checksumsOK(b []byte) (ipOK, l4OK bool) {
	ip := b[14:]
	ihl := int(ip[0]&0xf) * 4
	ipOK = fold(csum(0, ip[:ihl])) == 0
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	l4 := ip[ihl:tot]
	var ps [12]byte
	copy(ps[0:], ip[12:20])
	ps[9] = ip[9]
	binary.BigEndian.PutUint16(ps[10:], uint16(len(l4)))
	if ip[9] == 17 && binary.BigEndian.Uint16(l4[6:]) == 0 {
		return ipOK, true
	}
	return ipOK, fold(csum(csum(0, ps[:]), l4)) == 0
}
