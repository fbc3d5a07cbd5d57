package dns

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// setPktinfo asks for IP_PKTINFO (IPv4, also for IPv4-mapped packets on a
// dual-stack socket) and IPV6_PKTINFO control messages with every packet.
func setPktinfo(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		domain, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			serr = err
			return
		}
		if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
			serr = err
			return
		}
		if domain == unix.AF_INET6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// pktinfoDst returns the destination address in a packet's control
// messages, or the zero Addr. It parses in place, without allocating.
func pktinfoDst(oob []byte) netip.Addr {
	for len(oob) >= unix.SizeofCmsghdr {
		l, level, typ := cmsgHeader(oob)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return netip.Addr{}
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			return netip.AddrFrom4([4]byte(data[8:12]))
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { in6_addr addr; int ifindex; }
			return netip.AddrFrom16([16]byte(data[0:16])).Unmap()
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}
}

// appendPktinfo appends a control message that makes the kernel send from
// src: IP_PKTINFO's spec_dst for IPv4, IPV6_PKTINFO's addr for IPv6.
func appendPktinfo(b []byte, src netip.Addr) []byte {
	src = src.Unmap()
	var level, typ, n int
	if src.Is4() {
		level, typ, n = unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo
	} else {
		level, typ, n = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo
	}
	start := len(b)
	b = append(b, make([]byte, unix.CmsgSpace(n))...)
	m := b[start:]
	if lenIs64 {
		binary.NativeEndian.PutUint64(m, uint64(unix.CmsgLen(n)))
	} else {
		binary.NativeEndian.PutUint32(m, uint32(unix.CmsgLen(n)))
	}
	binary.NativeEndian.PutUint32(m[unix.SizeofCmsghdr-8:], uint32(level))
	binary.NativeEndian.PutUint32(m[unix.SizeofCmsghdr-4:], uint32(typ))
	data := m[unix.CmsgLen(0):]
	if src.Is4() {
		a := src.As4()
		copy(data[4:8], a[:]) // spec_dst; ifindex 0 lets routing pick the device
	} else {
		a := src.As16()
		copy(data[0:16], a[:])
	}
	return b
}

// struct cmsghdr is { size_t len; int level; int type; }.
const lenIs64 = unix.SizeofCmsghdr == 16

func cmsgHeader(b []byte) (l int, level, typ int32) {
	if lenIs64 {
		l = int(binary.NativeEndian.Uint64(b))
	} else {
		l = int(binary.NativeEndian.Uint32(b))
	}
	level = int32(binary.NativeEndian.Uint32(b[unix.SizeofCmsghdr-8:]))
	typ = int32(binary.NativeEndian.Uint32(b[unix.SizeofCmsghdr-4:]))
	return l, level, typ
}
