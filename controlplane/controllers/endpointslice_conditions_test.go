package controllers

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An endpoint names its pod (targetRef) and node, and follows the pod through graceful
// termination: ready=false, serving=true, terminating=true, and out of the legacy Endpoints.
func TestEndpointConditionsAndRefs(t *testing.T) {
	c := newCluster(t, 1, 1)
	ns := "epcond"
	c.createNamespace(ns)
	// On "ghost", which has no agent: the graceful delete below stays pending.
	c.makePod(ns, "web-0", map[string]string{"app": "cond"}, "ghost", nil)
	c.setPodStatus(ns, "web-0", runningStatus("10.9.1.1", true, time.Now()))
	pod, err := c.client.CoreV1().Pods(ns).Get(c.ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "cond", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cond"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := c.client.CoreV1().Services(ns).Create(c.ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	endpoint := func() (*discoveryv1.Endpoint, error) {
		sl := c.slicesOf(ns, "cond")
		if len(sl) != 1 || len(sl[0].Endpoints) != 1 {
			return nil, fmt.Errorf("%d slices", len(sl))
		}
		return &sl[0].Endpoints[0], nil
	}
	conds := func(e *discoveryv1.Endpoint) string {
		b := func(p *bool) string {
			if p == nil {
				return "nil"
			}
			return fmt.Sprint(*p)
		}
		return fmt.Sprintf("ready=%s serving=%s terminating=%s", b(e.Conditions.Ready), b(e.Conditions.Serving), b(e.Conditions.Terminating))
	}
	c.eventually(20*time.Second, "ready endpoint", func() (bool, error) {
		e, err := endpoint()
		if err != nil {
			return false, err
		}
		return conds(e) == "ready=true serving=true terminating=false", fmt.Errorf("%s", conds(e))
	})
	e, _ := endpoint()
	if e.NodeName == nil || *e.NodeName != "ghost" {
		t.Errorf("endpoint nodeName = %v, want ghost", e.NodeName)
	}
	if r := e.TargetRef; r == nil || r.Kind != "Pod" || r.Name != "web-0" || r.Namespace != ns || r.UID != pod.UID {
		t.Errorf("endpoint targetRef = %+v, want the pod", r)
	}
	if err := c.client.CoreV1().Pods(ns).Delete(c.ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(20*time.Second, "terminating endpoint", func() (bool, error) {
		e, err := endpoint()
		if err != nil {
			return false, err
		}
		return conds(e) == "ready=false serving=true terminating=true", fmt.Errorf("%s", conds(e))
	})
	c.eventually(20*time.Second, "terminating pod out of the legacy Endpoints", func() (bool, error) {
		ep, err := c.client.CoreV1().Endpoints(ns).Get(c.ctx, "cond", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, ss := range ep.Subsets {
			if len(ss.Addresses)+len(ss.NotReadyAddresses) > 0 {
				return false, nil
			}
		}
		return true, nil
	})
}
