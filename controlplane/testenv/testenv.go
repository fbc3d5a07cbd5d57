// Package testenv starts a real skiff control plane (embedded etcd + API server) inside a
// test, on a random loopback port, for tests that need the real API.
package testenv

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/server"
)

// Env is a running control plane.
type Env struct {
	URL        string
	Config     *rest.Config // admin
	Client     kubernetes.Interface
	Kubeconfig string // path of the admin kubeconfig
	DataDir    string
	JoinToken  string
	Server     *server.Server

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start runs a control plane with a fresh data dir until the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, server.Config{DataDir: t.TempDir()}, nil)
}

// StartWith runs a control plane with cfg (Listen defaults to 127.0.0.1:0 and
// AdvertiseAddress to 127.0.0.1; reuse a DataDir to test a restart). hooks are registered
// as post-start hooks before it runs.
func StartWith(t testing.TB, cfg server.Config, hooks map[string]server.PostStartHook) *Env {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.AdvertiseAddress == "" {
		cfg.AdvertiseAddress = "127.0.0.1"
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for name, h := range hooks {
		if err := srv.AddPostStartHook(name, h); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Env{Server: srv, DataDir: cfg.DataDir, cancel: cancel, done: make(chan error, 1),
		URL: srv.URL(), Config: srv.AdminConfig(), Kubeconfig: srv.KubeconfigPath(), JoinToken: srv.JoinToken()}
	go func() { e.done <- srv.Run(ctx) }()
	t.Cleanup(e.Stop)
	select {
	case <-srv.Ready():
	case err := <-e.done:
		e.done <- err
		t.Fatalf("testenv: server stopped before it was ready: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatalf("testenv: server not ready after 90s")
	}
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		t.Fatalf("testenv: client: %v", err)
	}
	return e
}

// StartPeer runs a second API server (its own data dir, CA and tokens) on the etcd of
// first, as `skiff server --etcd-endpoints` replicas share one etcd cluster. It stops
// before first does (t.Cleanup runs last-in first-out).
func StartPeer(t testing.TB, first *Env) *Env {
	t.Helper()
	url := first.Server.EtcdURL()
	if url == "" {
		t.Fatalf("testenv: the first server has no etcd URL")
	}
	return StartWith(t, server.Config{EtcdEndpoints: []string{url}}, nil)
}

// Stop shuts the control plane down and waits for it (also run by t.Cleanup).
func (e *Env) Stop() {
	e.once.Do(func() {
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
		}
	})
}
