package kubelet

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// When someone else marks a running pod NotReady (the node lifecycle controller does it when
// the node's lease lapses), the agent puts its own view back once it sees the change, rather
// than trusting what it wrote last.
func TestE2EReadyRestoredAfterOthersMarkNotReady(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	p := cl.createPod(t, echoPod("default", "echo-nr", n.Name))
	p = waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "Running and Ready", running)

	for i := range p.Status.Conditions {
		if c := &p.Status.Conditions[i]; c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			c.Status, c.Reason = corev1.ConditionFalse, "NodeNotReady"
		}
	}
	if _, err := cl.Client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "Ready again", running)
}
