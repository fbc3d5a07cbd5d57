package bench

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// The timed loads drive their sockets with blocking system calls on one locked thread, not
// through Go's net package. Go's dial costs a dozen system calls beyond connect (keepalive
// options, epoll registration, getsockname/getpeername) and every read that would block parks
// the goroutine and wakes it through the netpoller. That is fixed work per connection and per
// request which every mode pays alike, and on a shared 2-CPU machine it made the harness,
// not the service translation, most of what a new connection cost: it squeezed every ratio
// between modes towards 1. A blocking socket/connect/write/read/close loop is what the
// kernel's own path costs, plus a clock read.

// rawAddr parses "ip:port" into a sockaddr.
func rawAddr(s string) (*unix.SockaddrInet4, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", s, err)
	}
	ip := net.ParseIP(host).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("target %q: want IPv4:port", s)
	}
	sa := &unix.SockaddrInet4{Port: p}
	copy(sa.Addr[:], ip)
	return sa, nil
}

func rawAddrs(list []string) ([]*unix.SockaddrInet4, error) {
	var out []*unix.SockaddrInet4
	for _, s := range list {
		sa, err := rawAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sa)
	}
	return out, nil
}

// rawSocket makes a blocking socket whose sends, receives and connect give up after timeout.
func rawSocket(typ int, timeout time.Duration) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	return fd, nil
}

// rawExchange sends req and reads a whole reply into reply.
func rawExchange(fd int, req, reply []byte) error {
	if n, err := unix.Write(fd, req); err != nil || n != len(req) {
		return fmt.Errorf("send: %d bytes, %v", n, err)
	}
	for got := 0; got < len(reply); {
		n, err := unix.Read(fd, reply[got:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		if n == 0 {
			return errors.New("receive: connection closed")
		}
		got += n
	}
	if reply[0] != replyMagic {
		return fmt.Errorf("bad reply %q", reply[:5])
	}
	return nil
}

// rawConnect makes a TCP socket connected to sa.
func rawConnect(sa *unix.SockaddrInet4) (int, error) {
	fd, err := rawSocket(unix.SOCK_STREAM, 2*time.Second)
	if err != nil {
		return -1, err
	}
	for {
		err = unix.Connect(fd, sa)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func saString(sa *unix.SockaddrInet4) string {
	return net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
}

func loadRR(spec LoadSpec, hist *hdrhistogram.Histogram, res *LoadResult) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sa, err := rawAddr(spec.TCP[0])
	if err != nil {
		return err
	}
	fd, err := rawConnect(sa)
	if err != nil {
		return fmt.Errorf("connect %s: %w", spec.TCP[0], err)
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	req, reply := request(kindRR), make([]byte, msgSize)
	end := time.Now().Add(spec.Duration)
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			return nil
		}
		if err := rawExchange(fd, req, reply); err != nil {
			return fmt.Errorf("request %d to %s: %w", res.Requests, spec.TCP[0], err)
		}
		hist.RecordValue(int64(time.Since(t0)))
		res.Requests++
	}
}

func loadCRR(spec LoadSpec, hist *hdrhistogram.Histogram, res *LoadResult) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	targets, err := rawAddrs(spec.TCP)
	if err != nil {
		return err
	}
	req, reply := request(kindRR), make([]byte, msgSize)
	end := time.Now().Add(spec.Duration)
	for i := 0; ; i++ {
		t0 := time.Now()
		if !t0.Before(end) {
			return nil
		}
		sa := targets[i%len(targets)]
		fd, err := rawConnect(sa)
		if err != nil {
			res.Errors++
			if res.Errors > 100 {
				return fmt.Errorf("connect %s: %w (%d errors)", saString(sa), err, res.Errors)
			}
			continue
		}
		err = rawExchange(fd, req, reply)
		unix.Close(fd)
		if err != nil {
			res.Errors++
			if res.Errors > 100 {
				return fmt.Errorf("exchange with %s: %w (%d errors)", saString(sa), err, res.Errors)
			}
			continue
		}
		hist.RecordValue(int64(time.Since(t0)))
		res.Requests++
	}
}

func loadUDP(spec LoadSpec, hist *hdrhistogram.Histogram, res *LoadResult) error {
	if len(spec.UDP) == 0 {
		return errors.New("load spec has no UDP targets")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sa, err := rawAddr(spec.UDP[0])
	if err != nil {
		return err
	}
	fd, err := rawSocket(unix.SOCK_DGRAM, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("udp %s: %w", spec.UDP[0], err)
	}
	req, reply := request(kindRR), make([]byte, msgSize)
	end := time.Now().Add(spec.Duration)
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			return nil
		}
		if err := rawExchange(fd, req, reply); err != nil {
			res.Errors++ // a lost datagram: count it, carry on
			if res.Errors > 1000 {
				return fmt.Errorf("udp %s: %w (%d lost)", spec.UDP[0], err, res.Errors)
			}
			continue
		}
		hist.RecordValue(int64(time.Since(t0)))
		res.Requests++
	}
}
