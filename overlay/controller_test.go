package overlay

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
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

func TestPeerViewAndSamePeer(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n2", ResourceVersion: "7", Labels: map[string]string{"a": "b"},
			Annotations: map[string]string{AnnotationVtepMAC: "0a:00:00:00:00:02", AnnotationVtepIP: "192.168.250.12", "other": "x"}},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.2.0/24"},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"big"}}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	o, err := peerView(n)
	if err != nil {
		t.Fatal(err)
	}
	v := o.(*corev1.Node)
	if len(v.Status.Images)+len(v.Status.Conditions)+len(v.Labels) != 0 || v.Annotations["other"] != "" || v.ResourceVersion != "7" {
		t.Errorf("view keeps more than the peer needs: %+v", v)
	}
	if p, ok := PeerFromNode(v); !ok || p.VtepIP.String() != "192.168.250.12" || p.PodCIDR.String() != "10.244.2.0/24" {
		t.Errorf("view lost the peer: %+v %v", p, ok)
	}

	heartbeat := n.DeepCopy()
	heartbeat.ResourceVersion = "8"
	heartbeat.Status.Conditions[0].Status = corev1.ConditionFalse
	if !samePeer(n, heartbeat) {
		t.Error("a status-only change counts as a peer change")
	}
	moved := n.DeepCopy()
	moved.Annotations[AnnotationVtepMAC] = "0a:00:00:00:00:03"
	if samePeer(n, moved) {
		t.Error("a new VTEP MAC does not count as a peer change")
	}
	unassigned := n.DeepCopy()
	unassigned.Spec.PodCIDR = ""
	if samePeer(n, unassigned) || !samePeer(unassigned, unassigned.DeepCopy()) {
		t.Error("losing the pod CIDR is not a change, or two incomplete nodes differ")
	}
	if samePeer(n, cache.DeletedFinalStateUnknown{Key: "n2", Obj: n}) {
		t.Error("a tombstone counts as the same peer")
	}
}
