package controllers

import (
	"context"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

// Two `skiff server`s on one etcd, each with its controller manager (as two control-plane
// machines run them): one leads, pods are created exactly once, and after the leader's
// server stops the other one takes over through its own API server.
func TestTwoServersNeverDoubleCreate(t *testing.T) {
	c := newCluster(t, 2, 0)
	peer := testenv.StartPeer(t, c.env)
	ctxA, stopA := context.WithCancel(c.ctx)
	ctxB, stopB := context.WithCancel(c.ctx)
	defer stopA()
	defer stopB()
	oa, ob := fastOptions(), fastOptions()
	oa.Identity, ob.Identity = "server-a", "server-b"
	if err := Start(ctxA, c.env.Config, oa); err != nil {
		t.Fatal(err)
	}
	if err := Start(ctxB, peer.Config, ob); err != nil {
		t.Fatal(err)
	}

	ns := "two"
	c.createNamespace(ns)
	var mu sync.Mutex
	created := map[string]bool{}
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ns))
	f.Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
		mu.Lock()
		created[o.(*corev1.Pod).Name] = true
		mu.Unlock()
	}})
	f.Start(c.ctx.Done())
	f.WaitForCacheSync(c.ctx.Done())
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(created) }

	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "once", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{Replicas: int32p(20), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "once"}},
			Template: podTemplate("once", "img")}}
	if _, err := c.client.AppsV1().ReplicaSets(ns).Create(c.ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "20 ready", func() (bool, error) { return readyCount(c.activePods(ns, "app=once")) == 20, nil })
	lease, err := c.client.CoordinationV1().Leases("kube-system").Get(c.ctx, "skiff-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leader := *lease.Spec.HolderIdentity
	// The leader's machine goes away: its controllers stop (and its API server, if it is
	// the peer; the first one also carries the etcd, so it stays).
	if leader == "server-a" {
		stopA()
	} else {
		stopB()
		peer.Stop()
	}
	c.eventually(30*time.Second, "new leader", func() (bool, error) {
		l, err := c.client.CoordinationV1().Leases("kube-system").Get(c.ctx, "skiff-controller-manager", metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != leader && *l.Spec.HolderIdentity != "", err
	})
	cur, _ := c.client.AppsV1().ReplicaSets(ns).Get(c.ctx, "once", metav1.GetOptions{})
	cur.Spec.Replicas = int32p(30)
	if _, err := c.client.AppsV1().ReplicaSets(ns).Update(c.ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "30 ready", func() (bool, error) { return readyCount(c.activePods(ns, "app=once")) == 30, nil })
	if n := count(); n != 30 {
		t.Errorf("%d pods were ever created for 30 replicas: the two servers double-created", n)
	}
}
