package controllers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReplicaSetScaleHealAdoptRelease(t *testing.T) {
	c := newCluster(t, 3, 1)
	ns := "rs"
	c.createNamespace(ns)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{Replicas: int32p(3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate("web", "nginx")},
	}
	rsc := c.client.AppsV1().ReplicaSets(ns)
	if _, err := rsc.Create(c.ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := func(n int) {
		t.Helper()
		c.eventually(30*time.Second, "replicas", func() (bool, error) {
			pods := c.activePods(ns, "app=web")
			cur, err := rsc.Get(c.ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return len(pods) == n && readyCount(pods) == n && cur.Status.ReadyReplicas == int32(n) &&
				cur.Status.AvailableReplicas == int32(n) && cur.Status.Replicas == int32(n) && cur.Status.ObservedGeneration == cur.Generation, nil
		})
	}
	want(3)

	// Scale up and down through /scale.
	for _, n := range []int32{5, 2} {
		sc, err := rsc.GetScale(c.ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc.Spec.Replicas = n
		if _, err := rsc.UpdateScale(c.ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want(int(n))
	}

	// Self-healing: delete a pod, a new one replaces it.
	pods := c.activePods(ns, "app=web")
	victim := pods[0]
	if err := c.client.CoreV1().Pods(ns).Delete(c.ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "replacement pod", func() (bool, error) {
		ps := c.activePods(ns, "app=web")
		for _, p := range ps {
			if p.Name == victim.Name {
				return false, nil
			}
		}
		return len(ps) == 2 && readyCount(ps) == 2, nil
	})

	// Release: relabel a pod; the RS lets it go and makes a new one.
	ps := c.activePods(ns, "app=web")
	p := ps[0]
	p.Labels = map[string]string{"app": "other"}
	if _, err := c.client.CoreV1().Pods(ns).Update(c.ctx, &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "release", func() (bool, error) {
		got, err := c.client.CoreV1().Pods(ns).Get(c.ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return metav1.GetControllerOf(got) == nil && len(c.activePods(ns, "app=web")) == 2, nil
	})

	// Adopt: relabel it back; the RS adopts it and deletes one extra.
	got, _ := c.client.CoreV1().Pods(ns).Get(c.ctx, p.Name, metav1.GetOptions{})
	got.Labels = map[string]string{"app": "web"}
	if _, err := c.client.CoreV1().Pods(ns).Update(c.ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "adoption", func() (bool, error) {
		ps := c.activePods(ns, "app=web")
		if len(ps) != 2 {
			return false, nil
		}
		for _, x := range ps {
			if ref := metav1.GetControllerOf(&x); ref == nil || ref.Name != "web" {
				return false, nil
			}
		}
		return true, nil
	})
	// A foreign orphan created by hand is adopted too.
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hand-made", Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec: podTemplate("web", "nginx").Spec}
	if _, err := c.client.CoreV1().Pods(ns).Create(c.ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want(2)
}

func TestReplicationController(t *testing.T) {
	c := newCluster(t, 2, 1)
	ns := "rc"
	c.createNamespace(ns)
	tmpl := podTemplate("legacy", "nginx")
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: ns},
		Spec:       corev1.ReplicationControllerSpec{Replicas: int32p(4), Selector: map[string]string{"app": "legacy"}, Template: &tmpl},
	}
	if _, err := c.client.CoreV1().ReplicationControllers(ns).Create(c.ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "rc ready", func() (bool, error) {
		cur, err := c.client.CoreV1().ReplicationControllers(ns).Get(c.ctx, "legacy", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return cur.Status.ReadyReplicas == 4 && len(c.activePods(ns, "app=legacy")) == 4, nil
	})
}
