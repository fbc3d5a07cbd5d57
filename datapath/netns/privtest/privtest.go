// Package privtest gates tests that need root, BPF, network namespaces or containerd.
//
// Outside CI such a test skips when the machine lacks what it needs. Under SKIFF_E2E=1, which
// .ci/run sets, a missing capability fails the test: CI must never pass by skipping.
package privtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Need is one capability a test depends on.
type Need int

const (
	Root       Need = iota // euid 0 (netns, netlink, iptables)
	BPF                    // root and bpffs mounted at /sys/fs/bpf
	Cgroup2                // cgroup2 mounted at Cgroup2Root
	Containerd             // a containerd socket at ContainerdSocket()
	EtcdBinary             // Debian's etcd-server binary on PATH
)

// Cgroup2Root is where this machine mounts cgroup2.
const Cgroup2Root = "/sys/fs/cgroup/unified"

// E2E reports whether missing capabilities must fail rather than skip.
func E2E() bool { return os.Getenv("SKIFF_E2E") == "1" }

// ContainerdSocket is $SKIFF_CONTAINERD_SOCKET or the socket .ci/deps starts containerd on.
func ContainerdSocket() string {
	if s := os.Getenv("SKIFF_CONTAINERD_SOCKET"); s != "" {
		return s
	}
	return "/run/skiff/containerd/containerd.sock"
}

// Require skips (or, under SKIFF_E2E=1, fails) t unless every need is met.
func Require(t testing.TB, needs ...Need) {
	t.Helper()
	for _, n := range needs {
		if err := check(n); err != nil {
			if E2E() {
				t.Fatalf("SKIFF_E2E=1 and %v", err)
			}
			t.Skipf("skipping: %v", err)
		}
	}
}

func check(n Need) error {
	switch n {
	case Root:
		if os.Geteuid() != 0 {
			return fmt.Errorf("test needs root")
		}
	case BPF:
		if os.Geteuid() != 0 {
			return fmt.Errorf("test needs root for BPF")
		}
		var st unix.Statfs_t
		if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
			return fmt.Errorf("bpffs is not mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)")
		}
	case Cgroup2:
		var st unix.Statfs_t
		if err := unix.Statfs(Cgroup2Root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			return fmt.Errorf("cgroup2 is not mounted at %s", Cgroup2Root)
		}
	case Containerd:
		c, err := net.DialTimeout("unix", ContainerdSocket(), 2*time.Second)
		if err != nil {
			return fmt.Errorf("containerd is not reachable at %s: %v", ContainerdSocket(), err)
		}
		c.Close()
	case EtcdBinary:
		if _, err := exec.LookPath("etcd"); err != nil {
			return fmt.Errorf("etcd binary not on PATH (apt-get install etcd-server)")
		}
	}
	return nil
}
