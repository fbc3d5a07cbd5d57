package kubelet

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func portPod(name string, hostNet bool, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name)},
		Spec:       corev1.PodSpec{HostNetwork: hostNet, Containers: []corev1.Container{{Name: "c", Ports: ports}}},
	}
}

func TestPortConflict(t *testing.T) {
	web := portPod("web", true, corev1.ContainerPort{ContainerPort: 8080})
	dns := portPod("dns", false, corev1.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP, HostIP: "10.0.0.1"})
	plain := portPod("plain", false, corev1.ContainerPort{ContainerPort: 8080})
	others := []*corev1.Pod{web, dns, plain}
	for _, c := range []struct {
		pod  *corev1.Pod
		want string // part of the message, "" = no conflict
	}{
		{portPod("web2", true, corev1.ContainerPort{ContainerPort: 8080}), "host port 8080/TCP is already used by pod default/web"},
		{portPod("hp", false, corev1.ContainerPort{ContainerPort: 80, HostPort: 8080}), "default/web"},
		{portPod("udp", true, corev1.ContainerPort{ContainerPort: 8080, Protocol: corev1.ProtocolUDP}), ""},
		{portPod("dns-any", false, corev1.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP}), "default/dns"},
		{portPod("dns-other-ip", false, corev1.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP, HostIP: "10.0.0.2"}), ""},
		// Container ports of pods in their own network namespace take nothing on the node.
		{portPod("plain2", false, corev1.ContainerPort{ContainerPort: 8080}), ""},
		{web, ""}, // a pod does not conflict with itself
	} {
		got := portConflict(c.pod, others)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: conflict %q, want %q", c.pod.Name, got, c.want)
		}
	}
}

func TestRejectedStatus(t *testing.T) {
	st := rejectedStatus(portPod("x", true), "10.0.0.1", "Pod was rejected: host port 8080/TCP ...")
	if st.Phase != corev1.PodFailed || st.Reason != rejectReason || !strings.Contains(st.Message, "8080/TCP") || st.HostIP != "10.0.0.1" {
		t.Fatalf("rejected status %+v", st)
	}
}
