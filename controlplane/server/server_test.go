package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffnet/skiff/controlplane/server"
	"github.com/skiffnet/skiff/controlplane/testenv"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

func TestConfigErrors(t *testing.T) {
	for _, c := range []server.Config{
		{ServiceCIDR: "10.96.0.0"},
		{ClusterCIDR: "nope"},
		{NodePortRange: "5-1"},
		{Listen: "nohostport"},
		{AdvertiseAddress: "not-an-ip"},
		{InsecureListen: "10.1.2.3:8080"},
	} {
		c.DataDir, c.Listen = t.TempDir(), orDefault(c.Listen, "127.0.0.1:0")
		if _, err := server.New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestExternalEtcdCluster runs the server against a 3-member cluster of Debian's etcd on
// loopback ports.
func TestExternalEtcdCluster(t *testing.T) {
	privtest.Require(t, privtest.EtcdBinary)
	dir := t.TempDir()
	type member struct{ name, client, peer string }
	var ms []member
	var initial []string
	for i := 1; i <= 3; i++ {
		m := member{fmt.Sprintf("m%d", i), fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	var endpoints []string
	for _, m := range ms {
		cmd := exec.Command("etcd", "--name", m.name, "--data-dir", filepath.Join(dir, m.name),
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new", "--initial-cluster-token", "skiff-test")
		log, _ := os.Create(filepath.Join(dir, m.name+".log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start etcd: %v", err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
		endpoints = append(endpoints, m.client)
	}
	env := testenv.StartWith(t, server.Config{EtcdEndpoints: endpoints}, nil)
	ctx := context.Background()
	if _, err := env.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ext"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := env.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != "10.96.0.1" {
		t.Fatalf("kubernetes service on external etcd: %v", err)
	}
	if _, err := os.Stat(filepath.Join(env.DataDir, "etcd")); err == nil {
		t.Fatal("embedded etcd data dir created although external endpoints were given")
	}
}
