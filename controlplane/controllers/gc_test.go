package controllers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func (c *cluster) gone(what string, get func() error) {
	c.t.Helper()
	c.eventually(30*time.Second, what+" deleted", func() (bool, error) {
		err := get()
		return apierrors.IsNotFound(err), err
	})
}

func TestGarbageCollectorPropagation(t *testing.T) {
	c := newCluster(t, 2, 1)
	ns := "gc"
	c.createNamespace(ns)
	deps := c.client.AppsV1().Deployments(ns)
	rsOf := func(name string) []appsv1.ReplicaSet {
		l, _ := c.client.AppsV1().ReplicaSets(ns).List(c.ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		return l.Items
	}
	for _, name := range []string{"bg", "fg", "orphan"} {
		if _, err := deps.Create(c.ctx, newDeployment(ns, name, 2, "img"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.deploymentDone(ns, name, 2, "img")
	}

	// Background: the deployment goes at once, then its RS and pods.
	bg := metav1.DeletePropagationBackground
	if err := deps.Delete(c.ctx, "bg", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "background cascade", func() (bool, error) {
		return len(rsOf("bg")) == 0 && len(c.activePods(ns, "app=bg")) == 0, nil
	})

	// Foreground: the deployment stays (foregroundDeletion) until its dependents are gone.
	fg := metav1.DeletePropagationForeground
	if err := deps.Delete(c.ctx, "fg", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	d, err := deps.Get(c.ctx, "fg", metav1.GetOptions{})
	if err == nil && (d.DeletionTimestamp == nil || !hasString(d.Finalizers, metav1.FinalizerDeleteDependents)) {
		t.Errorf("foreground delete: deployment has no foregroundDeletion finalizer: %v", d.Finalizers)
	}
	c.gone("foreground deployment", func() error {
		_, err := deps.Get(c.ctx, "fg", metav1.GetOptions{})
		if err == nil && (len(rsOf("fg")) == 0) {
			return nil
		}
		if apierrors.IsNotFound(err) && len(rsOf("fg")) > 0 {
			t.Errorf("foreground: deployment deleted before its replicasets")
		}
		return err
	})
	c.eventually(30*time.Second, "foreground pods", func() (bool, error) { return len(c.activePods(ns, "app=fg")) == 0, nil })

	// Orphan: deployment goes, RS and pods stay without an owner reference.
	or := metav1.DeletePropagationOrphan
	if err := deps.Delete(c.ctx, "orphan", metav1.DeleteOptions{PropagationPolicy: &or}); err != nil {
		t.Fatal(err)
	}
	c.gone("orphaning deployment", func() error { _, err := deps.Get(c.ctx, "orphan", metav1.GetOptions{}); return err })
	c.eventually(30*time.Second, "orphaned replicaset", func() (bool, error) {
		rss := rsOf("orphan")
		return len(rss) == 1 && len(rss[0].OwnerReferences) == 0, nil
	})
	if n := len(c.activePods(ns, "app=orphan")); n != 2 {
		t.Errorf("orphaned pods: %d, want 2", n)
	}

	// A ConfigMap owned by a pod goes with the pod.
	p := c.activePods(ns, "app=orphan")[0]
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owned", Namespace: ns,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: p.Name, UID: p.UID}}}}
	if _, err := c.client.CoreV1().ConfigMaps(ns).Create(c.ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := rsOf("orphan")[0]
	if err := c.client.AppsV1().ReplicaSets(ns).Delete(c.ctx, rs.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.gone("configmap owned by a collected pod", func() error {
		_, err := c.client.CoreV1().ConfigMaps(ns).Get(c.ctx, "owned", metav1.GetOptions{})
		return err
	})
}

func hasString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestNamespaceDeletionCascades(t *testing.T) {
	c := newCluster(t, 2, 1)
	ns := "doomed"
	c.createNamespace(ns)
	if _, err := c.client.AppsV1().Deployments(ns).Create(c.ctx, newDeployment(ns, "web", 3, "img"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().ConfigMaps(ns).Create(c.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deploymentDone(ns, "web", 3, "img")
	if err := c.client.CoreV1().Namespaces().Delete(c.ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.gone("namespace", func() error { _, err := c.client.CoreV1().Namespaces().Get(c.ctx, ns, metav1.GetOptions{}); return err })
	pods, _ := c.client.CoreV1().Pods(ns).List(c.ctx, metav1.ListOptions{})
	cms, _ := c.client.CoreV1().ConfigMaps(ns).List(c.ctx, metav1.ListOptions{})
	rss, _ := c.client.AppsV1().ReplicaSets(ns).List(c.ctx, metav1.ListOptions{})
	if len(pods.Items)+len(cms.Items)+len(rss.Items) != 0 {
		t.Errorf("left behind: %d pods, %d configmaps, %d replicasets", len(pods.Items), len(cms.Items), len(rss.Items))
	}
}
