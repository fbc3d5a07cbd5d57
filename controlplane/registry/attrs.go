package registry

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Attrs gives the labels and the fields a field selector may name: metadata.name and
// metadata.namespace for every kind, plus the kind-specific ones Kubernetes supports.
func Attrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	f := fields.Set{"metadata.name": m.GetName()}
	if ns := m.GetNamespace(); ns != "" {
		f["metadata.namespace"] = ns
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		f["spec.nodeName"] = o.Spec.NodeName
		f["spec.restartPolicy"] = string(o.Spec.RestartPolicy)
		f["spec.schedulerName"] = o.Spec.SchedulerName
		f["spec.serviceAccountName"] = o.Spec.ServiceAccountName
		f["spec.hostNetwork"] = strconv.FormatBool(o.Spec.HostNetwork)
		f["status.phase"] = string(o.Status.Phase)
		f["status.podIP"] = o.Status.PodIP
		f["status.nominatedNodeName"] = o.Status.NominatedNodeName
	case *corev1.Event:
		io := o.InvolvedObject
		f["involvedObject.kind"] = io.Kind
		f["involvedObject.namespace"] = io.Namespace
		f["involvedObject.name"] = io.Name
		f["involvedObject.uid"] = string(io.UID)
		f["involvedObject.apiVersion"] = io.APIVersion
		f["involvedObject.resourceVersion"] = io.ResourceVersion
		f["involvedObject.fieldPath"] = io.FieldPath
		f["reason"] = o.Reason
		f["reportingComponent"] = o.ReportingController
		f["source"] = o.Source.Component
		f["type"] = o.Type
	case *corev1.Secret:
		f["type"] = string(o.Type)
	case *corev1.Namespace:
		f["status.phase"] = string(o.Status.Phase)
	case *corev1.Node:
		f["spec.unschedulable"] = strconv.FormatBool(o.Spec.Unschedulable)
	case *corev1.Service:
		f["spec.clusterIP"] = o.Spec.ClusterIP
		f["spec.type"] = string(o.Spec.Type)
	case *corev1.ReplicationController:
		f["status.replicas"] = strconv.Itoa(int(o.Status.Replicas))
	}
	return labels.Set(m.GetLabels()), f, nil
}
