package overlay

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

// testNode is a node netns with one pod netns behind a veth.
type testNode struct {
	ns, pod  *netns.NS
	h        *netlink.Handle
	underIP  net.IP
	podCIDR  *net.IPNet
	podIP    net.IP
	overlay  *Overlay
	underDev string
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newNS(t *testing.T, prefix string) *netns.NS {
	t.Helper()
	name := fmt.Sprintf("%s%06x", prefix, rand.Uint32()&0xffffff)
	ns, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	return ns
}

// run executes a command inside ns (used for ethtool and sysctl-like writes).
func run(t *testing.T, ns *netns.NS, args ...string) {
	t.Helper()
	if err := ns.Do(func() error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %v: %s", args, err, out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func setForwarding(t *testing.T, ns *netns.NS) {
	t.Helper()
	if err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
}

// vethInto makes a veth pair in a's netns and moves the peer end into b, both ends up.
func vethInto(t *testing.T, a, b *netns.NS, nameA, nameB string, addrA, addrB string) {
	t.Helper()
	if err := netns.Veth(a, nameA, addrA, b, nameB, addrB); err != nil {
		t.Fatal(err)
	}
}

func newTestNode(t *testing.T, world *netns.NS, i int) *testNode {
	t.Helper()
	n := &testNode{
		ns:       newNS(t, "skov"),
		pod:      newNS(t, "skovp"),
		underIP:  net.IPv4(192, 168, 250, byte(10+i)).To4(),
		podCIDR:  mustCIDR(t, fmt.Sprintf("10.244.%d.0/24", i)),
		podIP:    net.IPv4(10, 244, byte(i), 5).To4(),
		underDev: "eth0",
	}
	// Underlay: the node's eth0 plugged into a bridge in the "world" netns.
	vethInto(t, n.ns, world, "eth0", fmt.Sprintf("w%d", i), n.underIP.String()+"/24", "")
	hw, err := world.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer hw.Close()
	br, err := hw.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	port, err := hw.LinkByName(fmt.Sprintf("w%d", i))
	if err != nil {
		t.Fatal(err)
	}
	if err := hw.LinkSetMaster(port, br); err != nil {
		t.Fatal(err)
	}

	// Pod: eth0 with the pod IP, default route via the node side's address.
	gw := net.IPv4(10, 244, byte(i), 1).String()
	vethInto(t, n.ns, n.pod, fmt.Sprintf("pod%d", i), "eth0", gw+"/32", n.podIP.String()+"/32")
	hp, err := n.pod.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer hp.Close()
	eth0, _ := hp.LinkByName("eth0")
	if err := hp.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP(gw), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	if err := hp.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP(gw)}); err != nil {
		t.Fatal(err)
	}
	n.h, err = n.ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.h.Close() })
	podLink, _ := n.h.LinkByName(fmt.Sprintf("pod%d", i))
	if err := n.h.RouteAdd(&netlink.Route{LinkIndex: podLink.Attrs().Index, Dst: &net.IPNet{IP: n.podIP, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	setForwarding(t, n.ns)

	n.overlay, err = New(n.h, DeviceConfig{LocalIP: n.underIP, Underlay: n.underDev}, n.podCIDR)
	if err != nil {
		t.Fatal(err)
	}
	run(t, n.ns, "ethtool", "-K", DefaultDevice, "tx", "off")
	return n
}

func (n *testNode) peer() Peer {
	return Peer{Node: n.ns.Name, PodCIDR: n.podCIDR, VtepIP: n.underIP, VtepMAC: n.overlay.MAC()}
}

// echoServer accepts one line per connection on the pod's IP and answers with a greeting.
func echoServer(t *testing.T, n *testNode) string {
	t.Helper()
	var ln net.Listener
	if err := n.pod.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(n.podIP.String(), "8080"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "%s says %s", n.ns.Name, line)
			}()
		}
	}()
	return ln.Addr().String()
}

// ask connects from pod to addr and returns the answer to one line.
func ask(from *testNode, addr string) (string, error) {
	var c net.Conn
	if err := from.pod.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "hello\n")
	return bufio.NewReader(c).ReadString('\n')
}

func TestE2EOverlayPodToPodAcrossNodes(t *testing.T) {
	privtest.Require(t, privtest.Root)
	world := newNS(t, "skovw")
	hw, err := world.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer hw.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := hw.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := hw.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}

	a, b := newTestNode(t, world, 1), newTestNode(t, world, 2)
	if got, want := a.overlay.MTU(), 1500-Overhead; got != want {
		t.Errorf("vxlan MTU = %d, want %d", got, want)
	}
	addrB := echoServer(t, b)
	addrA := echoServer(t, a)

	// Without peers there is no path between the pod subnets.
	if _, err := ask(a, addrB); err == nil {
		t.Fatal("pod A reached pod B before any peer was programmed")
	}

	if err := a.overlay.SetPeers([]Peer{b.peer()}); err != nil {
		t.Fatal(err)
	}
	if err := b.overlay.SetPeers([]Peer{a.peer()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from *testNode
		addr string
		want string
	}{{a, addrB, b.ns.Name + " says hello\n"}, {b, addrA, a.ns.Name + " says hello\n"}} {
		got, err := ask(c.from, c.addr)
		if err != nil || got != c.want {
			t.Fatalf("from %s to %s: got %q, %v; want %q", c.from.ns.Name, c.addr, got, err, c.want)
		}
	}

	// Idempotent: adopting the device and programming the same peers again changes nothing.
	before, _ := a.h.LinkByName(DefaultDevice)
	again, err := New(a.h, DeviceConfig{LocalIP: a.underIP, Underlay: a.underDev}, a.podCIDR)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.SetPeers([]Peer{b.peer()}); err != nil {
		t.Fatal(err)
	}
	after, _ := a.h.LinkByName(DefaultDevice)
	if before.Attrs().Index != after.Attrs().Index {
		t.Errorf("device recreated: index %d -> %d", before.Attrs().Index, after.Attrs().Index)
	}
	if got, err := ask(a, addrB); err != nil || got != b.ns.Name+" says hello\n" {
		t.Fatalf("after re-adoption: %q, %v", got, err)
	}

	// A peer that goes away takes its route, neighbour and FDB entry with it.
	if err := a.overlay.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	routes, _ := a.h.RouteList(after, 2)
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == b.podCIDR.String() {
			t.Errorf("route to %s left behind", r.Dst)
		}
	}
	fdb, _ := a.h.NeighList(after.Attrs().Index, 7)
	for _, f := range fdb {
		if f.IP.Equal(b.underIP) {
			t.Errorf("FDB entry for %s left behind", f.IP)
		}
	}
	if _, err := ask(a, addrB); err == nil {
		t.Error("pod A still reaches pod B after the peer was removed")
	}
}

func TestSetPeersRejectsIncompletePeer(t *testing.T) {
	o := &Overlay{link: &netlink.Vxlan{}}
	err := o.SetPeers([]Peer{{Node: "n2", PodCIDR: mustCIDR(t, "10.244.2.0/24")}})
	if err == nil {
		t.Fatal("want an error for a peer without VTEP")
	}
}
