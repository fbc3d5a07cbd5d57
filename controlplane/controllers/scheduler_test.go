package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Through the real API: an unfittable pod gets PodScheduled=False with the
// reasons, and is retried (and bound) once a node changes.
func TestSchedulerUnschedulableThenRetried(t *testing.T) {
	c := newCluster(t, 0, 0)
	small := func(n *corev1.Node) {
		n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourcePods: resource.MustParse("110")}
	}
	c.addNode("n1", small)
	c.addNode("n2", small)
	c.addNode("n3", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}
	})
	c.startManager(c.ctx, fastOptions())
	ns := "sched"
	c.createNamespace(ns)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}}}}}
	if _, err := c.client.CoreV1().Pods(ns).Create(c.ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "0/3 nodes are available: 2 Insufficient memory, 1 node(s) had untolerated taint {k: v}."
	c.eventually(20*time.Second, "PodScheduled=False", func() (bool, error) {
		got, err := c.client.CoreV1().Pods(ns).Get(c.ctx, "big", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				if cond.Message != want {
					return false, &msgErr{cond.Message}
				}
				return true, nil
			}
		}
		return false, nil
	})
	c.eventually(20*time.Second, "FailedScheduling event", func() (bool, error) {
		ev, err := c.client.CoreV1().Events(ns).List(c.ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range ev.Items {
			if e.Reason == "FailedScheduling" && strings.Contains(e.Message, "Insufficient memory") {
				return true, nil
			}
		}
		return false, nil
	})
	// Remove the taint: the pod is retried and lands on n3.
	// Retried: the IPAM controller may be writing the node too.
	c.eventually(10*time.Second, "taint removed", func() (bool, error) {
		n3, err := c.client.CoreV1().Nodes().Get(c.ctx, "n3", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		n3.Spec.Taints = nil
		_, err = c.client.CoreV1().Nodes().Update(c.ctx, n3, metav1.UpdateOptions{})
		return err == nil, err
	})
	c.eventually(20*time.Second, "bound to n3", func() (bool, error) {
		got, err := c.client.CoreV1().Pods(ns).Get(c.ctx, "big", metav1.GetOptions{})
		return err == nil && got.Spec.NodeName == "n3", err
	})
}

type msgErr struct{ m string }

func (e *msgErr) Error() string { return "message: " + e.m }
