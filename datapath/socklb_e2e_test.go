package datapath

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
	"golang.org/x/sys/unix"
)

// TestMain doubles as the socket-LB helper: TestE2ESocketLB runs the test binary with
// SKIFF_DP_HELPER set, so a separate process joins the child cgroup and the node netns and
// connects to a Service. It prints "backend peer" or "error ...".
func TestMain(m *testing.M) {
	if os.Getenv("SKIFF_DP_HELPER") != "" {
		socketLBHelper()
	}
	os.Exit(m.Run())
}

func socketLBHelper() {
	out := func(format string, args ...any) { fmt.Printf(format+"\n", args...); os.Exit(0) }
	cg, nsPath, target, proto := os.Getenv("SKIFF_DP_CGROUP"), os.Getenv("SKIFF_DP_NETNS"), os.Getenv("SKIFF_DP_TARGET"), os.Getenv("SKIFF_DP_PROTO")
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		out("error join cgroup: %v", err)
	}
	runtime.LockOSThread()
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		out("error open netns: %v", err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		out("error setns: %v", err)
	}
	if proto == "udp" {
		c, err := net.Dial("udp4", target)
		if err != nil {
			out("error %v", err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("q"))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			out("error %v", err)
		}
		out("%s %s", buf[:n], c.RemoteAddr())
	}
	c, err := net.DialTimeout("tcp4", target, 3*time.Second)
	if err != nil {
		out("error %v", err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		out("error read: %v", err)
	}
	// Go fills RemoteAddr from getpeername(2): socket LB must show the Service address.
	out("%s %s", strings.TrimSpace(line), c.RemoteAddr())
}

func TestE2ESocketLB(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF, privtest.Cgroup2)
	tp := newTopo(t)
	cg := filepath.Join(privtest.Cgroup2Root, "skiff-test-"+randSuffix(6))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	cfg := nodeAConfig(tp, testPinDir(t))
	cfg.CgroupPath = cg
	d := newTestDatapath(t, tp.nodeA, cfg)
	svc, slices := webService(tp.backendIP["b1"], tp.backendIP["b2"], tp.backendIP["b3"])
	if err := d.UpsertService(svc, slices); err != nil {
		t.Fatal(err)
	}
	empty := []svcPort{{name: "http", port: 80, target: 8080}}
	if err := d.UpsertService(makeService("default", "empty", "10.96.0.30", empty...), nil); err != nil {
		t.Fatal(err)
	}
	helper := func(proto, target string) string {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "SKIFF_DP_HELPER=1", "SKIFF_DP_CGROUP="+cg, "SKIFF_DP_NETNS="+tp.nodeA.Path(),
			"SKIFF_DP_TARGET="+target, "SKIFF_DP_PROTO="+proto)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper: %v: %s", err, out)
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	seen := map[string]bool{}
	for i := 0; i < 12; i++ {
		got := helper("tcp", "10.96.0.10:80")
		f := strings.Fields(got)
		if len(f) != 2 || f[0] == "error" {
			t.Fatalf("socket LB connect: %s", got)
		}
		if f[1] != "10.96.0.10:80" {
			t.Fatalf("getpeername shows %s, want the Service address", f[1])
		}
		seen[f[0]] = true
	}
	if len(seen) < 2 {
		t.Errorf("12 sockets reached only %v", seen)
	}
	if got := helper("udp", "10.96.0.10:53"); !strings.HasSuffix(got, " 10.96.0.10:53") || strings.HasPrefix(got, "error") {
		t.Fatalf("socket LB UDP: %s", got)
	}
	if got := helper("tcp", "10.96.0.30:80"); !strings.Contains(got, "connection refused") {
		t.Fatalf("socket LB to a service without backends: %q, want connection refused", got)
	}
	// No per-packet NAT happened: the pod programs are not even attached here.
}
