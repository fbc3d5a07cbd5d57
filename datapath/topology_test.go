package datapath

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath/netns"
)

// topo is the traffic-test network, all in namespaces the test creates:
//
//	client pod (10.244.1.2) --vpcl-- node A --vpb1/2/3-- backends b1..b3 (10.244.1{1,2,3}.2)
//	external client (10.0.1.2) --dext-- node A (10.0.1.1)
//	node A (10.0.2.1) --dab-- node B (10.0.2.2) --vpb4-- backend b4 (10.244.21.2)
//
// Every backend runs a TCP server on :8080 (greets with its name, then echoes lines) and a
// UDP server on :5353 (answers its name). Checksum offload is off on every veth.
type topo struct {
	t                 *testing.T
	nodeA, nodeB      *netns.NS
	client, extClient *netns.NS
	backends          map[string]*netns.NS // b1..b4
	podIfaces         []string             // host-side pod veths on node A
	backendIP         map[string]string
	closers           []io.Closer
	mu                sync.Mutex
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func nsRun(t testing.TB, ns *netns.NS, args ...string) {
	t.Helper()
	run(t, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

// veth makes a pair in a (name an) and b (name bn) with the given CIDR addresses.
func veth(t testing.TB, a *netns.NS, an, aAddr string, b *netns.NS, bn, bAddr string) {
	t.Helper()
	if err := netns.Veth(a, an, aAddr, b, bn, bAddr); err != nil {
		t.Fatal(err)
	}
}

func route(t testing.TB, ns *netns.NS, args ...string) {
	t.Helper()
	nsRun(t, ns, append([]string{"ip", "route", "add"}, args...)...)
}

func newTopo(t *testing.T) *topo {
	tp := &topo{t: t, backends: map[string]*netns.NS{}, backendIP: map[string]string{}}
	tp.nodeA = newTestNS(t, "A")
	tp.nodeB = newTestNS(t, "B")
	tp.client = newTestNS(t, "c")
	tp.extClient = newTestNS(t, "x")
	for _, n := range []*netns.NS{tp.nodeA, tp.nodeB} {
		nsRun(t, n, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	}
	veth(t, tp.nodeA, "vpcl", "10.244.1.1/24", tp.client, "eth0", "10.244.1.2/24")
	route(t, tp.client, "default", "via", "10.244.1.1")
	tp.podIfaces = append(tp.podIfaces, "vpcl")
	for i, name := range []string{"b1", "b2", "b3"} {
		ns := newTestNS(t, name)
		tp.backends[name] = ns
		sub := fmt.Sprintf("10.244.%d", 11+i)
		veth(t, tp.nodeA, "vp"+name, sub+".1/24", ns, "eth0", sub+".2/24")
		route(t, ns, "default", "via", sub+".1")
		tp.podIfaces = append(tp.podIfaces, "vp"+name)
		tp.backendIP[name] = sub + ".2"
	}
	veth(t, tp.nodeA, "dext", "10.0.1.1/24", tp.extClient, "eth0", "10.0.1.2/24")
	route(t, tp.extClient, "default", "via", "10.0.1.1")
	veth(t, tp.nodeA, "dab", "10.0.2.1/24", tp.nodeB, "dba", "10.0.2.2/24")
	route(t, tp.nodeB, "default", "via", "10.0.2.1")
	b4 := newTestNS(t, "b4")
	tp.backends["b4"] = b4
	veth(t, tp.nodeB, "vpb4", "10.244.21.1/24", b4, "eth0", "10.244.21.2/24")
	route(t, b4, "default", "via", "10.244.21.1")
	route(t, tp.nodeA, "10.244.21.0/24", "via", "10.0.2.2")
	tp.backendIP["b4"] = "10.244.21.2"
	for name, ns := range tp.backends {
		tp.serve(name, ns)
	}
	t.Cleanup(func() {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		for _, c := range tp.closers {
			c.Close()
		}
	})
	return tp
}

func (tp *topo) addCloser(c io.Closer) {
	tp.mu.Lock()
	tp.closers = append(tp.closers, c)
	tp.mu.Unlock()
}

// serve starts the TCP and UDP servers of backend name inside ns.
func (tp *topo) serve(name string, ns *netns.NS) {
	var ln net.Listener
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp4", ":8080"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ":5353")
		return err
	}); err != nil {
		tp.t.Fatal(err)
	}
	tp.addCloser(ln)
	tp.addCloser(pc)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.addCloser(c)
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%s %s", name, line)
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name), from)
		}
	}()
}

// conn is a client TCP connection with its greeting (the backend's name).
type conn struct {
	net.Conn
	r       *bufio.Reader
	backend string
}

// dial connects from ns to addr and reads the greeting.
func dial(ns *netns.NS, addr string) (*conn, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 3*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read greeting from %s: %w", addr, err)
	}
	c.SetReadDeadline(time.Time{})
	return &conn{Conn: c, r: r, backend: strings.TrimSpace(line)}, nil
}

// echo checks the connection still reaches its backend.
func (c *conn) echo(msg string) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if want := c.backend + " " + msg + "\n"; line != want {
		return fmt.Errorf("echo: got %q, want %q", line, want)
	}
	return nil
}

// udpAsk sends one datagram from ns to addr and returns the answer and its source.
func udpAsk(ns *netns.NS, addr string) (string, string, error) {
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", ":0")
		return err
	}); err != nil {
		return "", "", err
	}
	return udpExchange(pc, addr)
}

// udpAskConnected uses a connected socket, which reports ICMP errors (ECONNREFUSED etc.).
func udpAskConnected(ns *netns.NS, addr string) (string, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("q")); err != nil {
		return "", err
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func udpExchange(pc net.PacketConn, addr string) (string, string, error) {
	defer pc.Close()
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return "", "", err
	}
	buf := make([]byte, 100)
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := pc.WriteTo([]byte("q"), to); err != nil {
			return "", "", err
		}
		pc.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err == nil {
			return string(buf[:n]), from.String(), nil
		}
		if !errors.Is(err, errTimeout) && !isTimeout(err) {
			return "", "", err
		}
	}
	return "", "", fmt.Errorf("no UDP answer from %s", addr)
}

var errTimeout = errors.New("timeout")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// eventually polls cond until it is nil or the deadline passes.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}
