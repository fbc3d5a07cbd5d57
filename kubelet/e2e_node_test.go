package kubelet

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/skiffnet/skiff/kubelet/images"
	"github.com/skiffnet/skiff/kubelet/runtime"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Node: registered with capacity, addresses and node info; NotReady until it has a pod
// CIDR, Ready once one is assigned (as the node IPAM controller does); its Lease renewed.
func TestE2ENodeRegistration(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{PodCIDR: noPodCIDR, LeaseInterval: 300 * time.Millisecond, StatusInterval: 300 * time.Millisecond})
	ctx := context.Background()
	nodes := cl.Client.CoreV1().Nodes()
	ready := func(node *corev1.Node) *corev1.NodeCondition {
		for i := range node.Status.Conditions {
			if node.Status.Conditions[i].Type == corev1.NodeReady {
				return &node.Status.Conditions[i]
			}
		}
		return nil
	}
	waitFor(t, podTimeout, "Node NotReady without a pod CIDR", func() (bool, string) {
		node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := ready(node)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "NetworkNotReady", describeNode(node)
	})
	// A pod bound now waits for the network.
	p := cl.createPod(t, echoPod("default", "early", n.Name))

	node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.PodCIDR = "10.244.91.0/24"
	node.Spec.PodCIDRs = []string{node.Spec.PodCIDR}
	if _, err := nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, podTimeout, "Node Ready with its pod CIDR", func() (bool, string) {
		node, err = nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := ready(node)
		return c != nil && c.Status == corev1.ConditionTrue, describeNode(node)
	})
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
		c, a := node.Status.Capacity[r], node.Status.Allocatable[r]
		if c.IsZero() || a.IsZero() || a.Cmp(c) > 0 {
			t.Errorf("%s: capacity %s allocatable %s", r, c.String(), a.String())
		}
	}
	addrs := map[corev1.NodeAddressType]string{}
	for _, ad := range node.Status.Addresses {
		addrs[ad.Type] = ad.Address
	}
	if addrs[corev1.NodeInternalIP] != "10.123.0.2" || addrs[corev1.NodeHostName] != n.Name {
		t.Errorf("addresses %v", node.Status.Addresses)
	}
	info := node.Status.NodeInfo
	if info.KernelVersion == "" || !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") || info.KubeletVersion == "" || info.Architecture == "" {
		t.Errorf("node info %+v", info)
	}
	if node.Labels["kubernetes.io/hostname"] != n.Name {
		t.Errorf("labels %v", node.Labels)
	}

	p = waitPod(t, cl.Client, "default", "early", podTimeout, "Running in the assigned CIDR", running)
	if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !netip.MustParsePrefix("10.244.91.0/24").Contains(ip) {
		t.Errorf("pod IP %q is not in the assigned pod CIDR", p.Status.PodIP)
	}

	// The Lease is renewed.
	leases := cl.Client.CoordinationV1().Leases("kube-node-lease")
	l, err := leases.Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := l.Spec.RenewTime
	waitFor(t, 20*time.Second, "lease renewed", func() (bool, string) {
		l, err = leases.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.Spec.RenewTime.After(first.Time), l.Spec.RenewTime.String()
	})
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != n.Name || l.Spec.LeaseDurationSeconds == nil {
		t.Errorf("lease spec %+v", l.Spec)
	}
}

func describeNode(n *corev1.Node) string {
	var b strings.Builder
	for _, c := range n.Status.Conditions {
		b.WriteString(string(c.Type) + "=" + string(c.Status) + "(" + c.Reason + ") ")
	}
	return b.String() + "podCIDR=" + n.Spec.PodCIDR
}

// Two pods that want the same port in the node's network namespace: the second is rejected
// with a status naming the holder, and the first keeps running.
func TestE2EHostPortConflict(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	hostPod := func(name string) *corev1.Pod {
		p := echoPod("default", name, n.Name)
		p.Spec.HostNetwork = true
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
		return p
	}
	cl.createPod(t, hostPod("first"))
	first := waitPod(t, cl.Client, "default", "first", podTimeout, "Running", running)
	if first.Status.PodIP != "10.123.0.2" {
		t.Errorf("hostNetwork pod IP %q, want the node's", first.Status.PodIP)
	}
	cl.createPod(t, hostPod("second"))
	p := waitPod(t, cl.Client, "default", "second", podTimeout, "rejected", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if p.Status.Reason != "NodePorts" || !strings.Contains(p.Status.Message, "8080/TCP") || !strings.Contains(p.Status.Message, "default/first") {
		t.Errorf("rejected pod status: reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	cs, _ := n.RT.List(context.Background())
	for _, c := range cs {
		if c.Labels[runtime.LabelPodName] == "second" {
			t.Errorf("rejected pod has container %s", c.ID)
		}
	}
	waitEvent(t, cl, "second", "NodePorts")
	// The first pod is untouched and serves on the node's address.
	n.waitServing(t, "10.123.0.2")
	if p := mustPod(t, cl.Client, "first"); !running(p) || ctrStatus(p, "echo").RestartCount != 0 {
		t.Errorf("first pod disturbed: %s", describeStatuses(p.Status.ContainerStatuses))
	}
}

// waitEvent waits for an event with reason about the pod name in default.
func waitEvent(t testing.TB, cl *testCluster, pod, reason string) {
	t.Helper()
	waitFor(t, 30*time.Second, "event "+reason+" for "+pod, func() (bool, string) {
		evs, err := cl.Client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == pod {
				if e.Reason == reason {
					return true, ""
				}
				seen = append(seen, e.Reason)
			}
		}
		return false, strings.Join(seen, ",")
	})
}

// What `skiff image ls` shows: the node's containerd namespace and its images.
func TestE2EImageList(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	nss, err := runtime.NodeNamespaces(context.Background(), n.cfg.ContainerdSocket)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ns := range nss {
		found = found || ns == runtime.NamespaceFor(n.Name)
	}
	if !found {
		t.Fatalf("namespace of node %s not among %v", n.Name, nss)
	}
	imgs, err := n.RT.Images(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]runtime.ImageInfo{}
	for _, im := range imgs {
		got[im.Name] = im
	}
	for _, want := range []string{images.Echo.Ref, images.DNSClient.Ref} {
		im, ok := got[want]
		if !ok || !strings.HasPrefix(im.Digest, "sha256:") || im.Size <= 0 {
			t.Errorf("image %s: %+v (all: %v)", want, im, imgs)
		}
	}
}
