package overlay

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPeerFromNode(t *testing.T) {
	node := func(cidr, mac, ip string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n2", Annotations: map[string]string{AnnotationVtepMAC: mac, AnnotationVtepIP: ip}},
			Spec:       corev1.NodeSpec{PodCIDR: cidr},
		}
	}
	for _, c := range []struct {
		name string
		node *corev1.Node
		ok   bool
	}{
		{"complete", node("10.244.2.0/24", "0a:00:00:00:00:02", "192.168.250.12"), true},
		{"no pod CIDR yet", node("", "0a:00:00:00:00:02", "192.168.250.12"), false},
		{"bad MAC", node("10.244.2.0/24", "nope", "192.168.250.12"), false},
		{"IPv6 VTEP", node("10.244.2.0/24", "0a:00:00:00:00:02", "fd00::2"), false},
	} {
		p, ok := PeerFromNode(c.node)
		if ok != c.ok {
			t.Errorf("%s: ok = %v, want %v", c.name, ok, c.ok)
		}
		if ok && (p.PodCIDR.String() != "10.244.2.0/24" || p.VtepIP.String() != "192.168.250.12") {
			t.Errorf("%s: peer = %+v", c.name, p)
		}
	}
}

func TestPublishVTEP(t *testing.T) {
	client := fake.NewSimpleClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	mac := []byte{0x0a, 0, 0, 0, 0, 1}
	if err := PublishVTEP(context.Background(), client, "n1", mac, []byte{192, 168, 250, 11}); err != nil {
		t.Fatal(err)
	}
	n, err := client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations[AnnotationVtepMAC] != "0a:00:00:00:00:01" || n.Annotations[AnnotationVtepIP] != "192.168.250.11" {
		t.Errorf("annotations = %v", n.Annotations)
	}
}
