package controllers

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestNodeFailureEvictsAndReschedules(t *testing.T) {
	o := fastOptions()
	o.NodeMonitorGracePeriod, o.PodEvictionTimeout = 2*time.Second, 2*time.Second
	c := newClusterWith(t, 3, 1, o)
	ns := "nodefail"
	c.createNamespace(ns)
	d := newDeployment(ns, "web", 6, "img:v1")
	// One pod tolerates unreachable forever: it must stay.
	if _, err := c.client.AppsV1().Deployments(ns).Create(c.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := c.client.CoreV1().Services(ns).Create(c.ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tolerant := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tolerant", Namespace: ns},
		Spec: corev1.PodSpec{NodeName: "n2", Containers: []corev1.Container{{Name: "c", Image: "x"}},
			Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}}}
	if _, err := c.client.CoreV1().Pods(ns).Create(c.ctx, tolerant, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deploymentDone(ns, "web", 6, "img:v1")
	var onN2 []string
	for _, p := range c.activePods(ns, "app=web") {
		if p.Spec.NodeName == "n2" {
			onN2 = append(onN2, p.Name)
		}
	}
	if len(onN2) == 0 {
		t.Fatalf("scheduler did not spread pods to n2")
	}
	c.kill("n2")

	// NotReady (Unknown) + both unreachable taints.
	c.eventually(20*time.Second, "n2 unreachable", func() (bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(c.ctx, "n2", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		rc := nodeReadyCondition(n)
		effects := map[corev1.TaintEffect]bool{}
		for _, tn := range n.Spec.Taints {
			if tn.Key == corev1.TaintNodeUnreachable {
				effects[tn.Effect] = true
			}
		}
		return rc != nil && rc.Status == corev1.ConditionUnknown && effects[corev1.TaintEffectNoSchedule] && effects[corev1.TaintEffectNoExecute], nil
	})
	// Its pods turn not ready at once, and their endpoints follow.
	c.eventually(20*time.Second, "endpoints on n2 not ready", func() (bool, error) {
		sl, err := c.client.DiscoveryV1().EndpointSlices(ns).List(c.ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return false, err
		}
		seen := 0
		for _, s := range sl.Items {
			for _, e := range s.Endpoints {
				if e.NodeName != nil && *e.NodeName == "n2" {
					if *e.Conditions.Ready {
						return false, nil
					}
					seen++
				}
			}
		}
		return seen > 0, nil
	})
	// Evicted after the timeout, recreated on the other nodes.
	c.eventually(40*time.Second, "rescheduled elsewhere", func() (bool, error) {
		pods := c.activePods(ns, "app=web")
		for _, p := range pods {
			if p.Spec.NodeName == "n2" || p.Spec.NodeName == "" {
				return false, nil
			}
		}
		return len(pods) == 6 && readyCount(pods) == 6, nil
	})
	if p, err := c.client.CoreV1().Pods(ns).Get(c.ctx, "tolerant", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("pod tolerating unreachable was evicted (err %v)", err)
	}
	// The node comes back: taints go away.
	c.mu.Lock()
	c.alive["n2"] = true
	c.mu.Unlock()
	c.eventually(10*time.Second, "n2 reports Ready", func() (bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(c.ctx, "n2", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		_, err = c.client.CoreV1().Nodes().UpdateStatus(c.ctx, n, metav1.UpdateOptions{})
		return err == nil, err
	})
	c.eventually(20*time.Second, "taints removed", func() (bool, error) {
		n, err := c.client.CoreV1().Nodes().Get(c.ctx, "n2", metav1.GetOptions{})
		return err == nil && len(n.Spec.Taints) == 0, err
	})
}

func TestNodeIPAM(t *testing.T) {
	c := newCluster(t, 3, 0)
	ctx := c.ctx
	o := fastOptions()
	o.DisableScheduler = true
	mctx, stop := cancelable(ctx)
	c.startManager(mctx, o)
	cidrs := func() map[string]string {
		out := map[string]string{}
		l, _ := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		for _, n := range l.Items {
			out[n.Name] = n.Spec.PodCIDR
		}
		return out
	}
	allAssigned := func(n int) {
		t.Helper()
		c.eventually(20*time.Second, "pod CIDRs", func() (bool, error) {
			m := cidrs()
			seen := map[string]string{}
			for node, cidr := range m {
				if cidr == "" {
					return false, nil
				}
				if other, dup := seen[cidr]; dup {
					return false, fmt.Errorf("%s on %s and %s", cidr, node, other)
				}
				seen[cidr] = node
			}
			return len(m) == n, nil
		})
	}
	allAssigned(3)
	first := cidrs()
	// Restart: a new manager rebuilds the used set and never repeats a range.
	stop()
	c.addNode("n4", nil)
	c.addNode("n5", nil)
	mctx2, stop2 := cancelable(ctx)
	defer stop2()
	c.startManager(mctx2, o)
	allAssigned(5)
	after := cidrs()
	for n, cidr := range first {
		if after[n] != cidr {
			t.Errorf("node %s CIDR changed %s -> %s", n, cidr, after[n])
		}
	}
	// Release on delete: the freed range is reused.
	freed := after["n1"]
	if err := c.client.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.kill("n1")
	c.eventually(20*time.Second, "freed CIDR reused", func() (bool, error) {
		if _, err := c.client.CoreV1().Nodes().Get(ctx, "n6", metav1.GetOptions{}); err != nil {
			c.addNode("n6", nil)
		}
		n, err := c.client.CoreV1().Nodes().Get(ctx, "n6", metav1.GetOptions{})
		return err == nil && n.Spec.PodCIDR == freed, err
	})
	if got := first["n1"]; got != "10.244.0.0/24" && got != "10.244.1.0/24" && got != "10.244.2.0/24" {
		t.Errorf("unexpected CIDR %s", got)
	}
}
