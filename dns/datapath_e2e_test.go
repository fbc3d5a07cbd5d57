package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/skiffnet/skiff/datapath"
	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func testNS(t *testing.T, tag string) *netns.NS {
	t.Helper()
	ns, err := netns.Create("skdns" + tag + randHex(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	return ns
}

func nsExec(t *testing.T, ns *netns.NS, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out)
}

// TestE2EParallelAAAAThroughClusterIP is the glibc lookup through skiff's
// datapath, the case that gives kube-proxy users 5-second lookups: a pod
// sends A and AAAA at the same moment from one UDP socket connected to the
// kube-dns ClusterIP, from two CPUs, so both packets of the new flow run the
// tc program (and the node's nf_conntrack, here with NAT and an INVALID-drop
// rule loaded as on a kube-proxy node) in parallel. Every round needs both
// answers; one lost packet would be a 5-second lookup.
//
//	pod (10.244.1.2) --veth-- node: tc ClusterIP 10.96.0.10:53 -> 10.0.53.1:53 | 10.0.53.2:53 (this server)
func TestE2EParallelAAAAThroughClusterIP(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	node, pod := testNS(t, "n"), testNS(t, "p")
	host := "vdns" + randHex(4)

	hn, err := node.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer hn.Close()
	hp, err := pod.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer hp.Close()
	if err := hn.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	peer, err := hn.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hn.LinkSetNsFd(peer, pod.FD()); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		h          *netlink.Handle
		link, addr string
	}{{hn, host, "10.244.1.1/24"}, {hp, "eth0", "10.244.1.2/24"}, {hn, "lo", "10.0.53.1/32"}, {hn, "lo", "10.0.53.2/32"}} {
		l, err := a.h.LinkByName(a.link)
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := netlink.ParseAddr(a.addr)
		if err := a.h.AddrAdd(l, addr); err != nil {
			t.Fatalf("address %s on %s: %v", a.addr, a.link, err)
		}
		if err := a.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	nsExec(t, pod, "ip", "route", "add", "default", "via", "10.244.1.1")
	nsExec(t, node, "ethtool", "-K", host, "tx", "off")
	nsExec(t, pod, "ethtool", "-K", "eth0", "tx", "off")
	nsExec(t, node, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	// A typical node: conntrack with NAT loaded, and the INVALID drop that
	// kube-proxy installs (a conntrack clash loser used to end up there).
	nsExec(t, node, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.244.0.0/16", "!", "-d", "10.244.0.0/16", "-j", "MASQUERADE")
	nsExec(t, node, "iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")

	pinDir := "/sys/fs/bpf/skiff-test-" + randHex(8)
	var dp *datapath.Datapath
	if err := node.Do(func() error {
		var err error
		dp, err = datapath.New(datapath.Config{PinDir: pinDir, NodeIPs: []net.IP{net.ParseIP("10.0.53.1")}, NodeName: "n1",
			MaxServices: 64, MaxBackends: 64, MaxConntrack: 4096})
		return err
	}); err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() { dp.Remove() })
	if err := dp.AttachPod(host); err != nil {
		t.Fatal(err)
	}
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	kubeDNS := clusterIPService("kube-system", "kube-dns", []string{"10.96.0.10"}, svcPort("dns", udp, 53), svcPort("dns-tcp", tcp, 53))
	sl := slice("kube-system", "kube-dns", "kube-dns-n1", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{slicePort("dns", udp, 53), slicePort("dns-tcp", tcp, 53)},
		ep{ip: "10.0.53.1", ready: true}, ep{ip: "10.0.53.2", ready: true})
	if err := dp.UpsertService(kubeDNS, []*discoveryv1.EndpointSlice{sl}); err != nil {
		t.Fatal(err)
	}

	// The server, on the node's addresses as the agent runs it.
	s := newTestServer(t, Config{Client: fakeClient(), Listen: []string{"10.0.53.1:53", "10.0.53.2:53"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Do(func() error { return s.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "server synced", func() bool { return len(s.Addrs()) > 0 && s.Ready() })

	const rounds = 300
	var fds []int
	if err := pod.Do(func() error {
		for range rounds {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{10, 96, 0, 10}, Port: 53}); err != nil {
				return err
			}
			tv := unix.Timeval{Sec: 2}
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("pod sockets: %v", err)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()

	name := "svc1.testns.svc.cluster.local."
	pkts := [2][]byte{}
	for i, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
		m := new(mdns.Msg)
		m.SetQuestion(name, qt)
		m.Id = uint16(i + 1)
		pkts[i], _ = m.Pack()
	}
	// Two senders pinned to different CPUs, released together: on even
	// rounds each sends one query (musl, or glibc's threads), on odd rounds
	// the first sends both back to back (glibc's sendmmsg).
	type job struct {
		fd    int
		round int64
		pkts  [][]byte
	}
	var gate atomic.Int64
	jobs := [2]chan job{make(chan job), make(chan job)}
	var sent sync.WaitGroup
	for w := range 2 {
		go func() {
			runtime.LockOSThread() // never unlocked: the pinned thread exits with the goroutine
			if runtime.NumCPU() > 1 {
				var set unix.CPUSet
				set.Set(w)
				_ = unix.SchedSetaffinity(0, &set)
			}
			for j := range jobs[w] {
				for gate.Load() < j.round {
					runtime.Gosched()
				}
				for _, p := range j.pkts {
					if _, err := unix.Write(j.fd, p); err != nil {
						t.Errorf("round %d: send: %v", j.round, err)
					}
				}
				sent.Done()
			}
		}()
	}
	defer close(jobs[0])
	defer close(jobs[1])

	lost := 0
	buf := make([]byte, 1500)
	for r, fd := range fds {
		round := int64(r + 1)
		sent.Add(2)
		if r%2 == 0 {
			jobs[0] <- job{fd, round, pkts[:1]}
			jobs[1] <- job{fd, round, pkts[1:]}
		} else {
			jobs[0] <- job{fd, round, pkts[:]}
			jobs[1] <- job{fd, round, nil}
		}
		gate.Store(round)
		sent.Wait()
		got := map[uint16]bool{}
		for range 2 {
			n, err := unix.Read(fd, buf)
			if err != nil {
				break // SO_RCVTIMEO: an answer that would take a resolver retry
			}
			m := new(mdns.Msg)
			if m.Unpack(buf[:n]) != nil || m.Rcode != mdns.RcodeSuccess {
				t.Errorf("round %d: bad answer %v", r, m)
				continue
			}
			got[m.Id] = true
		}
		if !got[1] || !got[2] {
			lost++
			t.Errorf("round %d: answers to A %v, AAAA %v: a resolver would wait 5 s", r, got[1], got[2])
		}
	}
	ct := ctStats(t, node)
	t.Logf("%d rounds of A+AAAA at once through 10.96.0.10, %d lost; node conntrack: insert_failed=%d drop=%d clash_resolve=%d",
		rounds, lost, ct["insert_failed"], ct["drop"], ct["clash_resolve"])
	if ct["insert_failed"] != 0 {
		t.Errorf("node conntrack insert_failed=%d: a lost race", ct["insert_failed"])
	}

	// Truncated answers retry over TCP through the same ClusterIP.
	var r *mdns.Msg
	if err := pod.Do(func() error {
		var err error
		r, err = exchange("10.96.0.10:53", "tcp", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetQuestion(name, mdns.TypeA)
			return m
		}())
		return err
	}); err != nil || len(r.Answer) != 1 {
		t.Errorf("TCP through the ClusterIP: %v %v", r, err)
	}
}

// ctStats sums the node's nf_conntrack statistics over CPUs: insert_failed
// would be a lost race, clash_resolve is one the kernel resolved.
func ctStats(t *testing.T, ns *netns.NS) map[string]int {
	t.Helper()
	sum := map[string]int{}
	for _, f := range strings.Fields(nsExec(t, ns, "conntrack", "-S")) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		var n int
		fmt.Sscan(v, &n)
		sum[k] += n
	}
	return sum
}
