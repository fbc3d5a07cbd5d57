package apiserver

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// ClusterDNSService is the selector-less Service whose EndpointSlices the node agents (which
// host the DNS server) maintain themselves.
const ClusterDNSService = "kube-dns"

func forbidden(u *User, ri *reqInfo, why string) error {
	what := ri.res.gvr.Resource
	if ri.sub != "" {
		what += "/" + ri.sub
	}
	scope := "at the cluster scope"
	if ri.namespace != "" {
		scope = fmt.Sprintf("in the namespace %q", ri.namespace)
	}
	return apierrors.NewForbidden(ri.res.gr(), ri.name, fmt.Errorf("User %q cannot %s resource %q in API group %q %s: %s",
		u.Name, ri.verb, what, ri.res.gvr.Group, scope, why))
}

// authorize decides on what the request line says. Admins may do everything; a node may read
// everything and write only what authorizeObject then checks against the objects.
func (s *Server) authorize(u *User, ri *reqInfo) error {
	if u.admin() {
		return nil
	}
	node := u.Node()
	if node == "" {
		return forbidden(u, ri, "no rule allows it")
	}
	switch ri.verb {
	case "get", "list", "watch":
		if ri.sub == "exec" {
			break
		}
		return nil
	}
	res := ri.res.gvr.Resource
	write := ri.verb == "create" || ri.verb == "update" || ri.verb == "patch"
	switch {
	case res == "nodes" && (ri.sub == "" || ri.sub == "status") && write:
		if ri.verb == "create" || ri.name == node {
			return nil
		}
		return forbidden(u, ri, "a node may only write its own Node")
	case res == "leases" && ri.namespace == "kube-node-lease" && (write || ri.verb == "delete"):
		if ri.verb == "create" || ri.name == node {
			return nil
		}
		return forbidden(u, ri, "a node may only write its own Lease")
	case res == "pods" && ri.sub == "status" && (ri.verb == "update" || ri.verb == "patch"):
		return nil // authorizeObject checks spec.nodeName
	case res == "pods" && ri.sub == "" && ri.verb == "delete":
		return nil
	case res == "events" && write:
		return nil
	case res == "endpointslices" && ri.namespace == "kube-system" && (write || ri.verb == "delete"):
		return nil
	}
	return forbidden(u, ri, "nodes may write only their own Node, Lease, the status of pods bound to them, and Events")
}

// authorizeObject checks a node's write against the stored object (cur, nil on create) and
// the object to be written (next, nil on delete).
func (s *Server) authorizeObject(u *User, ri *reqInfo, cur, next runtime.Object) error {
	if u.admin() {
		return nil
	}
	node := u.Node()
	for _, obj := range []runtime.Object{cur, next} {
		if obj == nil {
			continue
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		switch o := obj.(type) {
		case *corev1.Node:
			if m.GetName() != node {
				return forbidden(u, ri, "a node may only write its own Node")
			}
		case *corev1.Pod:
			if obj == cur && o.Spec.NodeName != node {
				return forbidden(u, ri, fmt.Sprintf("the pod is bound to node %q, not to this node", o.Spec.NodeName))
			}
		case *discoveryv1.EndpointSlice:
			if m.GetLabels()[discoveryv1.LabelServiceName] != ClusterDNSService {
				return forbidden(u, ri, "nodes may only write the EndpointSlices of the kube-dns Service")
			}
		default:
			if ri.res.gvr.Resource == "leases" && m.GetName() != node {
				return forbidden(u, ri, "a node may only write its own Lease")
			}
		}
	}
	return nil
}
