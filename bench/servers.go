package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/skiffnet/skiff/datapath/netns"
)

// Wire format between the load generators and the backend servers: fixed 64-byte messages.
// A request's first byte is its kind; a reply carries the backend's identity (index and the
// port it was received on), so the suite can check that every mode sends traffic to the right
// backends of the right service.
const (
	msgSize    = 64
	kindRR     = 'R' // request/response; the server answers each 64-byte request
	kindStream = 'S' // throughput; the server discards everything
	replyMagic = 'A'
)

// Identity is who answered a request.
type Identity struct {
	Backend int `json:"backend"`
	Port    int `json:"port"`
}

func encodeReply(buf []byte, id Identity) {
	buf[0] = replyMagic
	binary.BigEndian.PutUint16(buf[1:3], uint16(id.Backend))
	binary.BigEndian.PutUint16(buf[3:5], uint16(id.Port))
}

func decodeReply(buf []byte) (Identity, error) {
	if len(buf) < 5 || buf[0] != replyMagic {
		return Identity{}, fmt.Errorf("bad reply %q", buf[:min(len(buf), 5)])
	}
	return Identity{Backend: int(binary.BigEndian.Uint16(buf[1:3])), Port: int(binary.BigEndian.Uint16(buf[3:5]))}, nil
}

// Servers are the TCP and UDP servers of every backend pod.
type Servers struct {
	closers []io.Closer
	wg      sync.WaitGroup
}

// StartServers listens inside each backend netns on the TCP and UDP ports of both measured
// services. The sockets belong to the netns they were made in, so they are served from
// ordinary goroutines afterwards.
func StartServers(backends []*netns.NS) (*Servers, error) {
	s := &Servers{}
	for i, ns := range backends {
		err := ns.Do(func() error {
			for _, port := range []int{PortFirstTCP, PortLastTCP} {
				// No keepalive: Go would set three socket options on every accepted connection.
				lc := net.ListenConfig{KeepAlive: -1}
				l, err := lc.Listen(context.Background(), "tcp4", ":"+strconv.Itoa(port))
				if err != nil {
					return err
				}
				s.closers = append(s.closers, l)
				s.wg.Add(1)
				go s.serveTCP(l, Identity{Backend: i, Port: port})
			}
			for _, port := range []int{PortFirstUDP, PortLastUDP} {
				c, err := net.ListenPacket("udp4", ":"+strconv.Itoa(port))
				if err != nil {
					return err
				}
				s.closers = append(s.closers, c)
				s.wg.Add(1)
				go s.serveUDP(c, Identity{Backend: i, Port: port})
			}
			return nil
		})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("start servers in %s: %w", ns.Name, err)
		}
	}
	return s, nil
}

func (s *Servers) serveTCP(l net.Listener, id Identity) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go handleTCP(c, id)
	}
}

// streamBufs are the receive buffers of throughput streams; request/response connections
// need only one message's worth, so a new connection allocates nothing big.
var streamBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func handleTCP(c net.Conn, id Identity) {
	defer c.Close()
	var msg [msgSize]byte
	buf := msg[:]
	if _, err := io.ReadFull(c, buf); err != nil {
		return
	}
	if buf[0] == kindStream {
		big := streamBufs.Get().(*[]byte)
		defer streamBufs.Put(big)
		for { // read into one 64 KiB buffer (io.Copy to io.Discard would read 8 KiB at a time)
			if _, err := c.Read(*big); err != nil {
				return
			}
		}
	}
	for {
		if buf[0] != kindRR {
			return
		}
		encodeReply(buf, id)
		if _, err := c.Write(buf[:msgSize]); err != nil {
			return
		}
		if _, err := io.ReadFull(c, buf[:msgSize]); err != nil {
			return
		}
	}
}

func (s *Servers) serveUDP(c net.PacketConn, id Identity) {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < msgSize || buf[0] != kindRR {
			continue
		}
		encodeReply(buf, id)
		c.WriteTo(buf[:msgSize], addr)
	}
}

// Close stops every server.
func (s *Servers) Close() {
	for _, c := range s.closers {
		c.Close()
	}
	s.wg.Wait()
}
