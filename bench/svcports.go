package bench

import (
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// svcPort is one port of one Service with its ready endpoints: the unit kube-proxy writes rules
// for (its ServicePortName).
type svcPort struct {
	Namespace, Name, PortName string
	Protocol                  string // lower case: tcp, udp
	ClusterIP                 string
	Port                      int
	Endpoints                 []string // "IP:port"
}

// String is kube-proxy's ServicePortName.String(): "ns/name:port" ("ns/name" for an unnamed port).
func (p svcPort) String() string {
	s := p.Namespace + "/" + p.Name
	if p.PortName != "" {
		s += ":" + p.PortName
	}
	return s
}

// svcPorts flattens services and their slices the way kube-proxy's change trackers do, keeping
// the services' order so the measured services sit at the start and end of the rules.
func svcPorts(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) []svcPort {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range slices {
		key := sl.Namespace + "/" + sl.Labels[discoveryv1.LabelServiceName]
		bySvc[key] = append(bySvc[key], sl)
	}
	var out []svcPort
	for _, svc := range svcs {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			p := svcPort{
				Namespace: svc.Namespace, Name: svc.Name, PortName: sp.Name,
				Protocol:  strings.ToLower(string(sp.Protocol)),
				ClusterIP: svc.Spec.ClusterIP, Port: int(sp.Port),
			}
			for _, sl := range bySvc[svc.Namespace+"/"+svc.Name] {
				port := -1
				for _, ep := range sl.Ports {
					if ep.Port != nil && ep.Name != nil && *ep.Name == sp.Name {
						port = int(*ep.Port)
					}
				}
				if port < 0 {
					continue
				}
				for _, ep := range sl.Endpoints {
					if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
						continue
					}
					for _, a := range ep.Addresses {
						p.Endpoints = append(p.Endpoints, net.JoinHostPort(a, strconv.Itoa(port)))
					}
				}
			}
			out = append(out, p)
		}
	}
	return out
}
