package storage_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/storage"
	"github.com/skiffnet/skiff/controlplane/storage/storagetest"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// etcdMember is one `etcd` process of a test cluster.
type etcdMember struct {
	name      string
	clientURL string
	cmd       *exec.Cmd
	logPath   string
}

// freePorts asks the kernel for n free loopback ports. They are released before etcd binds
// them, so another process could take one in between; that is rare and shows as a start error.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startEtcdCluster runs a 3-member cluster of Debian's etcd on loopback and returns its
// members once every member answers. Cleanup kills each process by pid.
// With tls set, clients must use https and present a certificate signed by tls.ca.
func startEtcdCluster(t *testing.T, n int, tls *testTLS) []*etcdMember {
	t.Helper()
	ports := freePorts(t, 2*n)
	base := t.TempDir()
	var members []*etcdMember
	var initial []string
	for i := range n {
		scheme := "http"
		if tls != nil {
			scheme = "https"
		}
		m := &etcdMember{name: fmt.Sprintf("m%d", i), clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i])}
		members = append(members, m)
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, ports[2*i+1]))
	}
	token := fmt.Sprintf("skiff-test-%d", time.Now().UnixNano())
	for i, m := range members {
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		m.logPath = filepath.Join(base, m.name+".log")
		logf, err := os.Create(m.logPath)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{
			"--name", m.name,
			"--data-dir", filepath.Join(base, m.name),
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", peerURL,
			"--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--heartbeat-interval", "50",
			"--election-timeout", "500",
			"--logger", "zap",
			"--log-level", "warn",
		}
		if tls != nil {
			args = append(args, "--cert-file", tls.serverCert, "--key-file", tls.serverKey,
				"--client-cert-auth", "--trusted-ca-file", tls.ca)
		}
		m.cmd = exec.Command("etcd", args...)
		m.cmd.Stdout, m.cmd.Stderr = logf, logf
		if err := m.cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start etcd %s: %v", m.name, err)
		}
		logf.Close()
		t.Cleanup(func() { m.kill() })
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range members {
				b, _ := os.ReadFile(m.logPath)
				t.Logf("etcd %s log (last 2000 bytes):\n%s", m.name, tail(b, 2000))
			}
		}
	})
	return members
}

func (m *etcdMember) kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Kill() // by pid
	m.cmd.Wait()
	m.cmd = nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func endpoints(ms []*etcdMember) []string {
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.clientURL)
	}
	return eps
}

func TestE2EExternalEtcdCluster(t *testing.T) {
	privtest.Require(t, privtest.EtcdBinary)
	members := startEtcdCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := storage.OpenEtcd(ctx, storage.EtcdConfig{Endpoints: endpoints(members)})
	if err != nil {
		t.Fatalf("open external etcd: %v", err)
	}
	defer e.Close()
	if e.Embedded() {
		t.Fatal("OpenEtcd with Endpoints started an embedded etcd")
	}
	// Wait until every member serves: a fresh cluster elects its leader first.
	for _, ep := range endpoints(members) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := e.Client.Status(sctx, ep)
			scancel()
			if err == nil && st.Leader != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd member %s not ready: %v", ep, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	s := storage.New(e.Client, storage.DefaultCodec())
	storagetest.RunConformance(t, func(t *testing.T) storage.Interface { return s })

	// Losing one member of three keeps the cluster writable; the client moves on.
	t.Run("MemberFailure", func(t *testing.T) {
		members[0].kill()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "after-failure", Namespace: "default"}}
		deadline := time.Now().Add(30 * time.Second)
		for {
			wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
			err := s.Create(wctx, "/registry/pods/default/after-failure", pod, &corev1.Pod{}, 0)
			wcancel()
			if err == nil || storage.IsExists(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("create after losing one member: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := s.Get(ctx, "/registry/pods/default/after-failure", &corev1.Pod{}); err != nil {
			t.Fatalf("get after losing one member: %v", err)
		}
	})
}
