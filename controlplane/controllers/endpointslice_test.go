package controllers

import (
	"fmt"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func (c *cluster) slicesOf(ns, svc string) []discoveryv1.EndpointSlice {
	l, err := c.client.DiscoveryV1().EndpointSlices(ns).List(c.ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil
	}
	return l.Items
}

func endpointCount(sl []discoveryv1.EndpointSlice) (total, ready int) {
	for _, s := range sl {
		for _, e := range s.Endpoints {
			total++
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready++
			}
		}
	}
	return
}

func (c *cluster) makePod(ns, name string, lbls map[string]string, node string, ports []corev1.ContainerPort) {
	c.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "x", Ports: ports}}}}
	if _, err := c.client.CoreV1().Pods(ns).Create(c.ctx, p, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create pod %s: %v", name, err)
	}
}

func TestEndpointSlices(t *testing.T) {
	c := newCluster(t, 3, 1)
	ns := "eps"
	c.createNamespace(ns)
	// Named target port that resolves differently per pod.
	c.makePod(ns, "a", map[string]string{"app": "named"}, "n1", []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}})
	c.makePod(ns, "b", map[string]string{"app": "named"}, "n2", []corev1.ContainerPort{{Name: "http", ContainerPort: 9090}})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "named", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "named"},
			Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}}}}
	if _, err := c.client.CoreV1().Services(ns).Create(c.ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(20*time.Second, "named port slices", func() (bool, error) {
		sl := c.slicesOf(ns, "named")
		ports := map[int32]int{}
		for _, s := range sl {
			if s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Service" {
				return false, fmt.Errorf("slice %s: labels/owner %v %v", s.Name, s.Labels, s.OwnerReferences)
			}
			for _, p := range s.Ports {
				ports[*p.Port] += len(s.Endpoints)
			}
		}
		_, ready := endpointCount(sl)
		return len(sl) == 2 && ports[8080] == 1 && ports[9090] == 1 && ready == 2, nil
	})
	c.eventually(20*time.Second, "legacy endpoints", func() (bool, error) {
		ep, err := c.client.CoreV1().Endpoints(ns).Get(c.ctx, "named", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(ep.Subsets) == 2 && len(ep.Subsets[0].Addresses) == 1 && len(ep.Subsets[1].Addresses) == 1, nil
	})

	// Not-ready pod (IP but Ready=False): not ready, unless publishNotReadyAddresses.
	c.makePod(ns, "unready", map[string]string{"app": "pub"}, "ghost", nil)
	p, _ := c.client.CoreV1().Pods(ns).Get(c.ctx, "unready", metav1.GetOptions{})
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.9.9.9", PodIPs: []corev1.PodIP{{IP: "10.9.9.9"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}}
	if _, err := c.client.CoreV1().Pods(ns).UpdateStatus(c.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, pub := range []bool{false, true} {
		name := fmt.Sprintf("pub-%v", pub)
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "pub"}, PublishNotReadyAddresses: pub,
				Ports: []corev1.ServicePort{{Port: 80}}}}
		if _, err := c.client.CoreV1().Services(ns).Create(c.ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.eventually(20*time.Second, name, func() (bool, error) {
			total, ready := endpointCount(c.slicesOf(ns, name))
			want := 0
			if pub {
				want = 1
			}
			return total == 1 && ready == want, nil
		})
		c.eventually(20*time.Second, name+" endpoints", func() (bool, error) {
			ep, err := c.client.CoreV1().Endpoints(ns).Get(c.ctx, name, metav1.GetOptions{})
			if err != nil || len(ep.Subsets) != 1 {
				return false, err
			}
			if pub {
				return len(ep.Subsets[0].Addresses) == 1, nil
			}
			return len(ep.Subsets[0].NotReadyAddresses) == 1, nil
		})
	}

	// Headless, without ports; hostname/subdomain set on the endpoint.
	hp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "h0", Namespace: ns, Labels: map[string]string{"app": "hl"}},
		Spec: corev1.PodSpec{NodeName: "n1", Hostname: "h0", Subdomain: "hl", Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	if _, err := c.client.CoreV1().Pods(ns).Create(c.ctx, hp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hl := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "hl", Namespace: ns},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "hl"}}}
	if _, err := c.client.CoreV1().Services(ns).Create(c.ctx, hl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(20*time.Second, "headless slice", func() (bool, error) {
		sl := c.slicesOf(ns, "hl")
		if len(sl) != 1 || len(sl[0].Endpoints) != 1 {
			return false, nil
		}
		_, headless := sl[0].Labels[corev1.IsHeadlessService]
		e := sl[0].Endpoints[0]
		return headless && e.Hostname != nil && *e.Hostname == "h0" && *e.Conditions.Ready, nil
	})

	// Selector-less service: user-managed slices are left alone.
	manual := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "manual", Namespace: ns}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}}}
	if _, err := c.client.CoreV1().Services(ns).Create(c.ctx, manual, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port, ready := int32(5432), true
	us := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "manual-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "manual"}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.10"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}}
	if _, err := c.client.DiscoveryV1().EndpointSlices(ns).Create(c.ctx, us, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// More than 100 endpoints: split into slices of at most 100.
	for i := 0; i < 230; i++ {
		c.makePod(ns, fmt.Sprintf("big-%03d", i), map[string]string{"app": "big"}, fmt.Sprintf("n%d", i%3+1), nil)
	}
	big := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "big"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := c.client.CoreV1().Services(ns).Create(c.ctx, big, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(60*time.Second, "230 endpoints in 3 slices", func() (bool, error) {
		sl := c.slicesOf(ns, "big")
		var sizes []int
		for _, s := range sl {
			sizes = append(sizes, len(s.Endpoints))
		}
		sort.Ints(sizes)
		_, ready := endpointCount(sl)
		return ready == 230 && len(sizes) == 3 && sizes[2] == 100 && sizes[1] == 100, nil
	})
	// Deleting one pod touches one slice only.
	before := map[string]string{}
	for _, s := range c.slicesOf(ns, "big") {
		before[s.Name] = s.ResourceVersion
	}
	if err := c.client.CoreV1().Pods(ns).Delete(c.ctx, "big-007", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "229 endpoints", func() (bool, error) {
		total, _ := endpointCount(c.slicesOf(ns, "big"))
		return total == 229, nil
	})
	changed := 0
	for _, s := range c.slicesOf(ns, "big") {
		if before[s.Name] != s.ResourceVersion {
			changed++
		}
	}
	if changed != 1 {
		t.Errorf("one pod deletion rewrote %d slices, want 1", changed)
	}
	got, err := c.client.DiscoveryV1().EndpointSlices(ns).Get(c.ctx, "manual-1", metav1.GetOptions{})
	if err != nil || len(got.Endpoints) != 1 || got.Endpoints[0].Addresses[0] != "192.0.2.10" {
		t.Errorf("user-managed slice of a selector-less service was changed: %v %v", got, err)
	}
	// The API server's own `kubernetes` service keeps its endpoints.
	if ep, err := c.client.CoreV1().Endpoints("default").Get(c.ctx, "kubernetes", metav1.GetOptions{}); err != nil || len(ep.Subsets) == 0 {
		t.Errorf("kubernetes endpoints disturbed: %v %v", ep, err)
	}
	// Deleting the service removes its slices and Endpoints.
	if err := c.client.CoreV1().Services(ns).Delete(c.ctx, "named", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(20*time.Second, "slices of deleted service", func() (bool, error) { return len(c.slicesOf(ns, "named")) == 0, nil })
}
