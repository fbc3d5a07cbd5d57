package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/apiserver"
	"github.com/skiffnet/skiff/controlplane/testenv"
)

func join(t *testing.T, env *testenv.Env, node string) apiserver.JoinResponse {
	t.Helper()
	code, body := raw(t, env, env.JoinToken, "POST", "/skiff/v1/join", "application/json", fmt.Sprintf(`{"nodeName":%q,"addresses":["127.0.0.1"]}`, node))
	if code != http.StatusCreated {
		t.Fatalf("join %s: %d %s", node, code, body)
	}
	var jr apiserver.JoinResponse
	if err := json.Unmarshal([]byte(body), &jr); err != nil || jr.Token == "" || jr.ServingCertPEM == "" || jr.ServingKeyPEM == "" || jr.CAPEM == "" {
		t.Fatalf("join response: %v %s", err, body)
	}
	return jr
}

func nodeClient(env *testenv.Env, token string) kubernetes.Interface {
	cfg := rest.CopyConfig(env.Config)
	cfg.BearerToken = token
	return kubernetes.NewForConfigOrDie(cfg)
}

func TestAuthnAuthzAndJoin(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	if code, _ := raw(t, env, "", "GET", "/api/v1/pods", "", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := raw(t, env, "wrong", "GET", "/api/v1/pods", "", ""); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	if code, _ := raw(t, env, "wrong", "POST", "/skiff/v1/join", "application/json", `{"nodeName":"x"}`); code != 401 {
		t.Fatalf("join with a bad token: %d", code)
	}
	if code, body := raw(t, env, env.JoinToken, "POST", "/skiff/v1/join", "application/json", `{"nodeName":"x","bogus":1}`); code != 400 {
		t.Fatalf("join with a bad body: %d %s", code, body)
	}
	n1 := join(t, env, "n1")
	n2 := join(t, env, "n2")
	c1 := nodeClient(env, n1.Token)
	// a node registers itself and keeps its status and lease
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	if _, err := c1.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("node creates itself: %v", err)
	}
	if _, err := c1.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n9"}}, metav1.CreateOptions{}); err == nil {
		t.Fatal("node created another node")
	} else {
		wantStatus(t, err, 403)
	}
	node, _ = c1.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	if _, err := c1.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("own node status: %v", err)
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: "kube-node-lease"}}
	if _, err := c1.CoordinationV1().Leases("kube-node-lease").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("own lease: %v", err)
	}
	lease.Name = "n2"
	_, err := c1.CoordinationV1().Leases("kube-node-lease").Create(ctx, lease, metav1.CreateOptions{})
	wantStatus(t, err, 403)
	_, err = c1.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	wantStatus(t, err, 403)
	if _, err := c1.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("node reads: %v", err)
	}
	// pods: status and delete only for pods bound to the node
	for _, n := range []string{"on1", "on2"} {
		p, err := env.Client.CoreV1().Pods("default").Create(ctx, pod(n), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name},
			Target: corev1.ObjectReference{Kind: "Node", Name: "n" + n[2:]}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p1, _ := c1.CoreV1().Pods("default").Get(ctx, "on1", metav1.GetOptions{})
	p1.Status.Phase = corev1.PodRunning
	if _, err := c1.CoreV1().Pods("default").UpdateStatus(ctx, p1, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status of own pod: %v", err)
	}
	p2, _ := c1.CoreV1().Pods("default").Get(ctx, "on2", metav1.GetOptions{})
	p2.Status.Phase = corev1.PodRunning
	_, err = c1.CoreV1().Pods("default").UpdateStatus(ctx, p2, metav1.UpdateOptions{})
	wantStatus(t, err, 403)
	wantStatus(t, c1.CoreV1().Pods("default").Delete(ctx, "on2", metav1.DeleteOptions{}), 403)
	if err := c1.CoreV1().Pods("default").Delete(ctx, "on1", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatalf("delete own pod: %v", err)
	}
	_, err = c1.CoreV1().Pods("default").Update(ctx, p2, metav1.UpdateOptions{})
	wantStatus(t, err, 403)
	if _, err := c1.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n1"}, Reason: "Started"}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("node event: %v", err)
	}
	// n2's token cannot write n1
	c2 := nodeClient(env, n2.Token)
	_, err = c2.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	wantStatus(t, err, 403)
	// re-join: refused with the join token once the Node exists, allowed with the node's token
	if code, body := raw(t, env, env.JoinToken, "POST", "/skiff/v1/join", "application/json", `{"nodeName":"n1","addresses":["127.0.0.1"]}`); code != 409 {
		t.Fatalf("second join: %d %s", code, body)
	}
	if code, body := raw(t, env, n1.Token, "POST", "/skiff/v1/join", "application/json", `{"nodeName":"n1","addresses":["127.0.0.1"]}`); code != 201 {
		t.Fatalf("re-join with node token: %d %s", code, body)
	}
	if code, _ := raw(t, env, n2.Token, "POST", "/skiff/v1/join", "application/json", `{"nodeName":"n1","addresses":["127.0.0.1"]}`); code != 403 {
		t.Fatalf("join as another node: %d", code)
	}
}
