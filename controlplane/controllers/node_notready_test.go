package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A node whose agent reports Ready=False (its lease still renewed) gets the not-ready
// taints, not the unreachable ones, and loses them when it reports Ready again.
func TestNodeReportingNotReadyIsTainted(t *testing.T) {
	c := newCluster(t, 1, 1)
	setReady := func(s corev1.ConditionStatus) {
		c.eventually(10*time.Second, "node status written", func() (bool, error) {
			n, err := c.client.CoreV1().Nodes().Get(c.ctx, "n1", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s, Reason: "KubeletNotReady",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
			_, err = c.client.CoreV1().Nodes().UpdateStatus(c.ctx, n, metav1.UpdateOptions{})
			return err == nil, err
		})
	}
	taints := func() map[string]bool {
		n, err := c.client.CoreV1().Nodes().Get(c.ctx, "n1", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		out := map[string]bool{}
		for _, tn := range n.Spec.Taints {
			out[tn.Key+":"+string(tn.Effect)] = true
		}
		return out
	}
	setReady(corev1.ConditionFalse)
	c.eventually(20*time.Second, "not-ready taints", func() (bool, error) {
		tt := taints()
		return len(tt) == 2 && tt[corev1.TaintNodeNotReady+":NoSchedule"] && tt[corev1.TaintNodeNotReady+":NoExecute"], nil
	})
	setReady(corev1.ConditionTrue)
	c.eventually(20*time.Second, "taints removed", func() (bool, error) { return len(taints()) == 0, nil })
}
