package server

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffnet/skiff/controlplane/apiserver"
	"github.com/skiffnet/skiff/controlplane/registry"
)

// SystemNamespaces exist in every cluster.
var SystemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// bootstrap creates, idempotently, the namespaces, the kubernetes Service (with endpoints
// pointing at the live API servers, this one included) and the kube-dns Service.
func (s *Server) bootstrap(ctx context.Context, api *apiserver.Server, alloc *registry.Allocator) error {
	for _, ns := range SystemNamespaces {
		if err := api.Ensure(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, false); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	port := int32(s.Port())
	objs := []struct {
		obj    runtime.Object
		update bool
	}{
		{&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
			Spec: corev1.ServiceSpec{ClusterIP: alloc.IPAt(1).String(),
				Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}}},
		}, false},
		{&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: apiserver.ClusterDNSService, Namespace: "kube-system", Labels: map[string]string{
				"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}},
			Spec: corev1.ServiceSpec{ClusterIP: alloc.IPAt(10).String(), Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)}}},
		}, false},
	}
	for _, o := range objs {
		if err := api.Ensure(ctx, o.obj, o.update); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	// The kubernetes Service's Endpoints and EndpointSlice list every live API server.
	if err := s.endpoints.renew(ctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func addressType(ip string) discoveryv1.AddressType {
	for _, c := range ip {
		if c == ':' {
			return discoveryv1.AddressTypeIPv6
		}
	}
	return discoveryv1.AddressTypeIPv4
}

func ptr[T any](v T) *T { return &v }
