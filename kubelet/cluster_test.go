package kubelet

import (
	"context"
	"os"
	"testing"

	"github.com/skiffnet/skiff/controlplane/testenv"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

// testCluster is the API the agent under test talks to: the real API server (testenv), or
// client-go's fake with SKIFF_KUBELET_FAKE=1 (quicker while developing).
type testCluster struct {
	Client kubernetes.Interface // admin
	Env    *testenv.Env
	// agentConfig fills in how an agent reaches the API.
	agentConfig func(cfg *Config)
}

func newCluster(t testing.TB) *testCluster {
	// CI (SKIFF_E2E=1) always runs against the real API server, so nothing skips there.
	if os.Getenv("SKIFF_KUBELET_FAKE") == "1" && !privtest.E2E() {
		c := fake.NewClientset()
		return &testCluster{Client: c, agentConfig: func(cfg *Config) { cfg.Client = c }}
	}
	env := testenv.Start(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType = "application/json"
	cfg.QPS, cfg.Burst = 1000, 2000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testCluster{Client: client, Env: env, agentConfig: func(cfg *Config) {
		cfg.Server = env.URL
		cfg.Token = env.JoinToken
	}}
}

func (c *testCluster) node(t testing.TB, cfg Config) *testNode {
	c.agentConfig(&cfg)
	return startNode(t, cfg)
}

func (c *testCluster) createPod(t testing.TB, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	if c.Env != nil {
		p.UID = "" // the API server assigns it
	}
	out, err := c.Client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
