package dns

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvBatch reads up to len(hdrs) datagrams with one recvmmsg: under load a
// read loop finds several queries queued, and one system call for all of
// them is cheaper than one each. Its buffers are reused by every call, so a
// batch's packets must be handled before the next call.
type recvBatch struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
	bufs  [][]byte
	oobs  [][]byte

	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool // b.read, bound once so that recv does not allocate
}

func newRecvBatch(rc syscall.RawConn, size, bufSize, oobSize int) *recvBatch {
	b := &recvBatch{
		rc:    rc,
		hdrs:  make([]unix.Mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrAny, size),
		bufs:  make([][]byte, size),
		oobs:  make([][]byte, size),
	}
	for i := range size {
		b.bufs[i] = make([]byte, bufSize)
		b.oobs[i] = make([]byte, oobSize)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(bufSize)
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		h.Control = &b.oobs[i][0]
	}
	b.readFn = b.read
	return b
}

// recv waits for datagrams and returns how many arrived.
func (b *recvBatch) recv() (int, error) {
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.SetControllen(len(b.oobs[i]))
		h.Flags = 0
		b.hdrs[i].Len = 0
	}
	b.n, b.errno = 0, 0
	if err := b.rc.Read(b.readFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	return b.n, nil
}

func (b *recvBatch) read(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)),
		unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0:
		b.n = int(n)
	case unix.EAGAIN:
		return false // wait until readable
	case unix.EINTR:
		return false
	default:
		b.errno = e
	}
	return true
}

// packet returns datagram i: its bytes, whether it was cut to the buffer,
// the sender and the control messages.
func (b *recvBatch) packet(i int) (data []byte, trunc bool, from netip.AddrPort, oob []byte) {
	h := &b.hdrs[i]
	return b.bufs[i][:h.Len], h.Hdr.Flags&unix.MSG_TRUNC != 0, sockaddrAddrPort(&b.names[i]), b.oobs[i][:h.Hdr.Controllen]
}

func sockaddrAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), portOf(&p.Port))
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		a := netip.AddrFrom16(p.Addr)
		if p.Scope_id != 0 {
			// Link-local: the answer must leave by the same interface.
			a = a.WithZone(strconv.FormatUint(uint64(p.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, portOf(&p.Port))
	}
	return netip.AddrPort{}
}

// portOf reads a sockaddr port, which is in network byte order.
func portOf(p *uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:])
}
