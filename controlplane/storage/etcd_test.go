package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/storage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A restart of the embedded etcd on the same data dir keeps every object and revision.
func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := storage.OpenEtcd(ctx, storage.EtcdConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := storage.New(e.Client, storage.DefaultCodec())
	created := &corev1.Pod{}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default"}}
	if err := s.Create(ctx, "/registry/pods/default/a", pod, created, 0); err != nil {
		t.Fatal(err)
	}
	e.Close()

	e, err = storage.OpenEtcd(ctx, storage.EtcdConfig{DataDir: dir})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer e.Close()
	s = storage.New(e.Client, storage.DefaultCodec())
	got := &corev1.Pod{}
	if err := s.Get(ctx, "/registry/pods/default/a", got); err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if got.ResourceVersion != created.ResourceVersion {
		t.Errorf("resourceVersion %s after restart, %s before", got.ResourceVersion, created.ResourceVersion)
	}
}

func TestOpenEtcdBadConfig(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		cfg  storage.EtcdConfig
		want string
	}{
		{storage.EtcdConfig{}, "DataDir"},
		{storage.EtcdConfig{DataDir: t.TempDir(), CAFile: "/x/ca.pem"}, "only used with external"},
		{storage.EtcdConfig{Endpoints: []string{"127.0.0.1:2379"}}, "not a URL"},
		{storage.EtcdConfig{Endpoints: []string{"http://127.0.0.1:2379"}, CertFile: "/c"}, "KeyFile"},
		{storage.EtcdConfig{Endpoints: []string{"http://127.0.0.1:2379"}, CAFile: "/ca"}, "use https://"},
		{storage.EtcdConfig{Endpoints: []string{"https://127.0.0.1:2379"}, CAFile: "/nonexistent/ca.pem"}, "TLS"},
	}
	for _, c := range cases {
		e, err := storage.OpenEtcd(ctx, c.cfg)
		if err == nil {
			e.Close()
			t.Errorf("OpenEtcd(%+v) succeeded, want an error mentioning %q", c.cfg, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenEtcd(%+v) = %v, want it to mention %q", c.cfg, err, c.want)
		}
	}
}

// An unreachable external etcd is reported, not waited on forever.
func TestOpenEtcdUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := storage.OpenEtcd(ctx, storage.EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}})
	if err == nil {
		e.Close()
		t.Fatal("OpenEtcd to a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("error %v does not say etcd does not answer", err)
	}
}
