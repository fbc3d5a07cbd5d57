package bench

import (
	"encoding/binary"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Addresses of the synthetic cluster. The client sits inside the cluster CIDR so that, as for
// pod-to-service traffic in a real cluster, kube-proxy's rules do not masquerade it.
const (
	ServiceCIDR = "10.96.0.0/12"
	ClusterCIDR = "10.244.0.0/16"
	Namespace   = "bench"

	// Ports the backend servers listen on. The measured service at the start of the rule list
	// targets the "first" ports, the one at the end targets the "last" ports, so a reply tells
	// which service's translation was taken.
	PortFirstTCP = 8080
	PortLastTCP  = 8081
	PortFirstUDP = 8053
	PortLastUDP  = 8054
	fillerPort   = 8080

	servicePortTCP = 80
	servicePortUDP = 53
)

var (
	clientIP   = net.IPv4(10, 244, 255, 2).To4()
	clientGW   = net.IPv4(10, 244, 255, 1).To4()
	podGW      = net.IPv4(10, 244, 0, 1).To4()
	fillerBase = ip4(10, 112, 0, 0) // 10.112.0.0/12: fake endpoints of the filler services
	vipBase    = ip4(10, 96, 0, 0)
)

func ip4(a, b, c, d byte) uint32 { return binary.BigEndian.Uint32([]byte{a, b, c, d}) }

func u32ToIP(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// PodIP is the address of backend pod i.
func PodIP(i int) net.IP { return u32ToIP(ip4(10, 244, 0, 0) + uint32(i) + 2) }

// ServiceIP is the ClusterIP of synthetic service i (skipping 10.96.0.0-10.96.0.99, where the
// kubernetes and kube-dns services of a real cluster sit).
func ServiceIP(i int) net.IP { return u32ToIP(vipBase + 100 + uint32(i)) }

// ServiceName is the name of synthetic service i.
func ServiceName(i int) string { return fmt.Sprintf("svc-%06d", i) }

// Position says where in the service list the measured service sits.
type Position string

const (
	First Position = "first"
	Last  Position = "last"
)

// ServiceSet is N synthetic services with B endpoints each, as Kubernetes objects, so the
// eBPF datapath and the kube-proxy rule generators are fed exactly the same thing.
type ServiceSet struct {
	N, B     int
	Services []*corev1.Service
	Slices   []*discoveryv1.EndpointSlice
}

// Measured is the index of the measured service at pos. With one service both positions are the
// same service, which targets the "last" ports.
func (s *ServiceSet) Measured(pos Position) int {
	if pos == First && s.N > 1 {
		return 0
	}
	return s.N - 1
}

// Ports are the TCP and UDP target ports of the measured service at pos.
func (s *ServiceSet) Ports(pos Position) (tcp, udp int) {
	if pos == First && s.N > 1 {
		return PortFirstTCP, PortFirstUDP
	}
	return PortLastTCP, PortLastUDP
}

// NewServiceSet builds n services x b endpoints. The measured services (index 0 and n-1) point at
// the b real backend pods and also carry a UDP port; the others are fillers with one TCP port and
// endpoints on addresses nothing answers, which only the rule or map size cares about.
func NewServiceSet(n, b int) (*ServiceSet, error) {
	if n < 1 || n > 1000000 {
		return nil, fmt.Errorf("services: %d out of range, want 1..1000000", n)
	}
	if b < 1 || b > 250 {
		return nil, fmt.Errorf("backends: %d out of range, want 1..250 (one netns per backend)", b)
	}
	s := &ServiceSet{N: n, B: b}
	for i := 0; i < n; i++ {
		svc, slice := s.build(i, 0)
		s.Services = append(s.Services, svc)
		s.Slices = append(s.Slices, slice)
	}
	return s, nil
}

// build makes service i; extra adds that many fake endpoints (for the one-service update).
func (s *ServiceSet) build(i, extra int) (*corev1.Service, *discoveryv1.EndpointSlice) {
	name := ServiceName(i)
	measured := i == 0 || i == s.N-1
	tcpTarget, udpTarget := fillerPort, 0
	if measured {
		tcpTarget, udpTarget = PortLastTCP, PortLastUDP
		if i == 0 && s.N > 1 {
			tcpTarget, udpTarget = PortFirstTCP, PortFirstUDP
		}
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  ServiceIP(i).String(),
			ClusterIPs: []string{ServiceIP(i).String()},
			Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: servicePortTCP,
				TargetPort: intstr.FromInt32(int32(tcpTarget)),
			}},
			Selector: map[string]string{"app": name},
		},
	}
	tcpName, tcpProto, tcpPort := "http", corev1.ProtocolTCP, int32(tcpTarget)
	slicePorts := []discoveryv1.EndpointPort{{Name: &tcpName, Protocol: &tcpProto, Port: &tcpPort}}
	if udpTarget != 0 {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: "dns", Protocol: corev1.ProtocolUDP, Port: servicePortUDP,
			TargetPort: intstr.FromInt32(int32(udpTarget)),
		})
		udpName, udpProto, udpPort := "dns", corev1.ProtocolUDP, int32(udpTarget)
		slicePorts = append(slicePorts, discoveryv1.EndpointPort{Name: &udpName, Protocol: &udpProto, Port: &udpPort})
	}
	ready := true
	var eps []discoveryv1.Endpoint
	for j := 0; j < s.B+extra; j++ {
		var ip net.IP
		switch {
		case measured && j < s.B:
			ip = PodIP(j)
		default:
			ip = u32ToIP(fillerBase + uint32(i*(s.B+1)+j))
		}
		eps = append(eps, discoveryv1.Endpoint{
			Addresses:  []string{ip.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	slice := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: Namespace, Name: name + "-abcde",
			Labels: map[string]string{discoveryv1.LabelServiceName: name},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       slicePorts,
	}
	return svc, slice
}

// Updated returns service i with one extra endpoint (grow=true) or as built (grow=false): the
// "one endpoint changed" event whose programming time the suite measures.
func (s *ServiceSet) Updated(i int, grow bool) (*corev1.Service, *discoveryv1.EndpointSlice) {
	extra := 0
	if grow {
		extra = 1
	}
	return s.build(i, extra)
}

// Replace stores an updated service i in the set, so full rule generation sees it.
func (s *ServiceSet) Replace(i int, svc *corev1.Service, slice *discoveryv1.EndpointSlice) {
	s.Services[i], s.Slices[i] = svc, slice
}

// UpdateTarget is the service the one-service update changes: a filler in the middle, so the
// measured services keep their backends while traffic runs.
func (s *ServiceSet) UpdateTarget() int { return s.N / 2 }
