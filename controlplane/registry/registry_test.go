package registry

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPullPolicy(t *testing.T) {
	for img, want := range map[string]corev1.PullPolicy{
		"busybox": corev1.PullAlways, "busybox:latest": corev1.PullAlways, "busybox:1.36": corev1.PullIfNotPresent,
		"localhost:5000/x": corev1.PullAlways, "localhost:5000/x:v1": corev1.PullIfNotPresent, "x@sha256:abc": corev1.PullIfNotPresent,
	} {
		if got := pullPolicyFor(img); got != want {
			t.Errorf("%s: %s, want %s", img, got, want)
		}
	}
}

func TestBitmap(t *testing.T) {
	var b []byte
	b = set(b, 13, true)
	if !get(b, 13) || get(b, 12) || len(b) != 2 {
		t.Fatalf("set/get: %v", b)
	}
	b = trim(set(b, 13, false))
	if len(b) != 0 {
		t.Fatalf("trim: %v", b)
	}
}

func TestAllocatorOffsets(t *testing.T) {
	a, err := NewAllocator(nil, netip.MustParsePrefix("10.96.0.0/12"), "30000-32767")
	if err != nil {
		t.Fatal(err)
	}
	if a.IPAt(1).String() != "10.96.0.1" || a.IPAt(10).String() != "10.96.0.10" || a.IPAt(256).String() != "10.96.1.0" {
		t.Fatalf("IPAt: %s %s %s", a.IPAt(1), a.IPAt(10), a.IPAt(256))
	}
	if a.offsetOf(netip.MustParseAddr("10.96.1.0")) != 256 || a.offsetOf(netip.MustParseAddr("10.112.0.1")) != -1 || a.offsetOf(netip.MustParseAddr("10.96.0.0")) != -1 {
		t.Fatal("offsetOf")
	}
	if _, _, err := ParsePortRange("3-1"); err == nil {
		t.Fatal("bad range accepted")
	}
	if _, err := NewAllocator(nil, netip.MustParsePrefix("10.0.0.0/30"), "30000-32767"); err == nil {
		t.Fatal("tiny CIDR accepted")
	}
}

func TestServiceUpdateCarriesAllocations(t *testing.T) {
	old := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.5", ClusterIPs: []string{"10.96.0.5"},
		Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30005}}}}
	s := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	carryServiceAllocations(s, old)
	if s.Spec.ClusterIP != "10.96.0.5" || s.Spec.Ports[0].NodePort != 30005 {
		t.Fatalf("not carried: %+v", s.Spec)
	}
	s.Spec.Type = corev1.ServiceTypeClusterIP
	carryServiceAllocations(s, old)
	if s.Spec.Ports[0].NodePort != 0 {
		t.Fatal("node port kept for ClusterIP")
	}
}

func TestGenerationAndStatus(t *testing.T) {
	st := &Strategy{HasStatus: true, Generation: true, ResetStatusOnCreate: true}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	PrepareForCreate(st, p)
	if len(p.Name) != len("web-")+5 || p.Generation != 1 || p.Status.Phase != corev1.PodPending || p.UID == "" {
		t.Fatalf("create: %+v", p.ObjectMeta)
	}
	n := p.DeepCopy()
	n.Status.Phase = corev1.PodFailed
	PrepareForUpdate(st, n, p)
	if n.Status.Phase != corev1.PodPending || n.Generation != 1 {
		t.Fatal("main update changed status or generation")
	}
	n.Spec.Containers[0].Image = "i:2"
	PrepareForUpdate(st, n, p)
	if n.Generation != 2 {
		t.Fatal("spec change did not bump generation")
	}
	s := p.DeepCopy()
	s.Status.Phase = corev1.PodRunning
	s.Spec.Containers[0].Image = "changed"
	out := PrepareForStatusUpdate(s, p).(*corev1.Pod)
	if out.Status.Phase != corev1.PodRunning || out.Spec.Containers[0].Image != "i:1" {
		t.Fatal("status update")
	}
}
