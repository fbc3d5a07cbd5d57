package apiserver

import (
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffnet/skiff/controlplane/registry"
)

// resource is one row of the table that drives the generic REST handler.
type resource struct {
	gvr          schema.GroupVersionResource
	kind         string
	singular     string
	namespaced   bool
	shortNames   []string
	newObj       func() runtime.Object
	newList      func() runtime.Object
	strategy     *registry.Strategy
	subresources []string // status, scale, binding, log, exec, finalize
	// fields a field selector may name besides metadata.name and metadata.namespace
	fields []string
}

func (r *resource) gvk() schema.GroupVersionKind { return r.gvr.GroupVersion().WithKind(r.kind) }
func (r *resource) listGVK() schema.GroupVersionKind {
	return r.gvr.GroupVersion().WithKind(r.kind + "List")
}
func (r *resource) gr() schema.GroupResource { return r.gvr.GroupResource() }

func (r *resource) hasSub(s string) bool {
	for _, x := range r.subresources {
		if x == s {
			return true
		}
	}
	return false
}

var (
	subdomain = apivalidation.NameIsDNSSubdomain
	label     = apivalidation.NameIsDNSLabel
	label1035 = apivalidation.NameIsDNS1035Label
)

func strat(nameFn apivalidation.ValidateNameFunc, hasStatus, resetStatus, generation bool) *registry.Strategy {
	return &registry.Strategy{NameFn: nameFn, HasStatus: hasStatus, ResetStatusOnCreate: resetStatus, Generation: generation, Attrs: registry.Attrs}
}

// resources lists everything skiff serves, in discovery order.
func resources() []*resource {
	core := func(res string) schema.GroupVersionResource { return corev1.SchemeGroupVersion.WithResource(res) }
	apps := func(res string) schema.GroupVersionResource { return appsv1.SchemeGroupVersion.WithResource(res) }
	events := strat(subdomain, false, false, false)
	events.AllowCreateOnUpdate = true
	events.TTL = 3600 // like kube-apiserver's --event-ttl default
	endpoints := strat(subdomain, false, false, false)
	endpoints.AllowCreateOnUpdate = true
	leases := strat(subdomain, false, false, false)
	leases.AllowCreateOnUpdate = true
	podFields := []string{"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"}
	return []*resource{
		{gvr: core("namespaces"), kind: "Namespace", singular: "namespace", shortNames: []string{"ns"},
			newObj: func() runtime.Object { return &corev1.Namespace{} }, newList: func() runtime.Object { return &corev1.NamespaceList{} },
			strategy: strat(label, true, true, false), subresources: []string{"status", "finalize"}, fields: []string{"status.phase"}},
		{gvr: core("nodes"), kind: "Node", singular: "node", shortNames: []string{"no"},
			newObj: func() runtime.Object { return &corev1.Node{} }, newList: func() runtime.Object { return &corev1.NodeList{} },
			strategy: strat(subdomain, true, false, false), subresources: []string{"status"}, fields: []string{"spec.unschedulable"}},
		{gvr: core("pods"), kind: "Pod", singular: "pod", namespaced: true, shortNames: []string{"po"},
			newObj: func() runtime.Object { return &corev1.Pod{} }, newList: func() runtime.Object { return &corev1.PodList{} },
			strategy: strat(subdomain, true, true, true), subresources: []string{"status", "binding", "log", "exec"}, fields: podFields},
		{gvr: core("services"), kind: "Service", singular: "service", namespaced: true, shortNames: []string{"svc"},
			newObj: func() runtime.Object { return &corev1.Service{} }, newList: func() runtime.Object { return &corev1.ServiceList{} },
			strategy: strat(label1035, true, true, false), subresources: []string{"status"}, fields: []string{"spec.clusterIP", "spec.type"}},
		{gvr: core("endpoints"), kind: "Endpoints", singular: "endpoints", namespaced: true, shortNames: []string{"ep"},
			newObj: func() runtime.Object { return &corev1.Endpoints{} }, newList: func() runtime.Object { return &corev1.EndpointsList{} },
			strategy: endpoints},
		{gvr: core("replicationcontrollers"), kind: "ReplicationController", singular: "replicationcontroller", namespaced: true, shortNames: []string{"rc"},
			newObj: func() runtime.Object { return &corev1.ReplicationController{} }, newList: func() runtime.Object { return &corev1.ReplicationControllerList{} },
			strategy: strat(subdomain, true, true, true), subresources: []string{"status", "scale"}, fields: []string{"status.replicas"}},
		{gvr: core("configmaps"), kind: "ConfigMap", singular: "configmap", namespaced: true, shortNames: []string{"cm"},
			newObj: func() runtime.Object { return &corev1.ConfigMap{} }, newList: func() runtime.Object { return &corev1.ConfigMapList{} },
			strategy: strat(subdomain, false, false, false)},
		{gvr: core("secrets"), kind: "Secret", singular: "secret", namespaced: true,
			newObj: func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} },
			strategy: strat(subdomain, false, false, false), fields: []string{"type"}},
		{gvr: core("events"), kind: "Event", singular: "event", namespaced: true, shortNames: []string{"ev"},
			newObj: func() runtime.Object { return &corev1.Event{} }, newList: func() runtime.Object { return &corev1.EventList{} },
			strategy: events, fields: []string{"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}},
		{gvr: core("serviceaccounts"), kind: "ServiceAccount", singular: "serviceaccount", namespaced: true, shortNames: []string{"sa"},
			newObj: func() runtime.Object { return &corev1.ServiceAccount{} }, newList: func() runtime.Object { return &corev1.ServiceAccountList{} },
			strategy: strat(subdomain, false, false, false)},
		{gvr: apps("deployments"), kind: "Deployment", singular: "deployment", namespaced: true, shortNames: []string{"deploy"},
			newObj: func() runtime.Object { return &appsv1.Deployment{} }, newList: func() runtime.Object { return &appsv1.DeploymentList{} },
			strategy: strat(subdomain, true, true, true), subresources: []string{"status", "scale"}},
		{gvr: apps("replicasets"), kind: "ReplicaSet", singular: "replicaset", namespaced: true, shortNames: []string{"rs"},
			newObj: func() runtime.Object { return &appsv1.ReplicaSet{} }, newList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
			strategy: strat(subdomain, true, true, true), subresources: []string{"status", "scale"}},
		{gvr: discoveryv1.SchemeGroupVersion.WithResource("endpointslices"), kind: "EndpointSlice", singular: "endpointslice", namespaced: true,
			newObj: func() runtime.Object { return &discoveryv1.EndpointSlice{} }, newList: func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
			strategy: strat(subdomain, false, false, false)},
		{gvr: coordinationv1.SchemeGroupVersion.WithResource("leases"), kind: "Lease", singular: "lease", namespaced: true,
			newObj: func() runtime.Object { return &coordinationv1.Lease{} }, newList: func() runtime.Object { return &coordinationv1.LeaseList{} },
			strategy: leases},
	}
}

// key is the etcd key of one object.
func (r *resource) key(ns, name string) string {
	if r.namespaced {
		return "/registry/" + r.gvr.Resource + "/" + ns + "/" + name
	}
	return "/registry/" + r.gvr.Resource + "/" + name
}

// prefix is the etcd prefix of a namespace's objects (or all of them when ns is "").
func (r *resource) prefix(ns string) string {
	if r.namespaced && ns != "" {
		return "/registry/" + r.gvr.Resource + "/" + ns + "/"
	}
	return "/registry/" + r.gvr.Resource + "/"
}
