package apiserver

import (
	"fmt"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

func newScale() runtime.Object { return &autoscalingv1.Scale{} }

// toScale is the autoscaling/v1 Scale view of a Deployment, ReplicaSet or RC.
func toScale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	sc := &autoscalingv1.Scale{}
	var om metav1.ObjectMeta
	switch o := obj.(type) {
	case *appsv1.Deployment:
		om = o.ObjectMeta
		sc.Spec.Replicas = deref(o.Spec.Replicas)
		sc.Status.Replicas = o.Status.Replicas
		if o.Spec.Selector != nil {
			sc.Status.Selector = metav1.FormatLabelSelector(o.Spec.Selector)
		}
	case *appsv1.ReplicaSet:
		om = o.ObjectMeta
		sc.Spec.Replicas = deref(o.Spec.Replicas)
		sc.Status.Replicas = o.Status.Replicas
		if o.Spec.Selector != nil {
			sc.Status.Selector = metav1.FormatLabelSelector(o.Spec.Selector)
		}
	case *corev1.ReplicationController:
		om = o.ObjectMeta
		sc.Spec.Replicas = deref(o.Spec.Replicas)
		sc.Status.Replicas = o.Status.Replicas
		sc.Status.Selector = labels.SelectorFromSet(o.Spec.Selector).String()
	default:
		return nil, fmt.Errorf("%T has no scale subresource", obj)
	}
	sc.ObjectMeta = metav1.ObjectMeta{Name: om.Name, Namespace: om.Namespace, UID: om.UID, ResourceVersion: om.ResourceVersion, CreationTimestamp: om.CreationTimestamp}
	return sc, nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// applyScale sets spec.replicas from a Scale, bumping generation when it changes.
func applyScale(cur, view runtime.Object) (runtime.Object, error) {
	sc := view.(*autoscalingv1.Scale)
	if sc.Spec.Replicas < 0 {
		return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), sc.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), sc.Spec.Replicas, "must be greater than or equal to 0")})
	}
	out := cur.DeepCopyObject()
	n := sc.Spec.Replicas
	var rep **int32
	var gen *int64
	switch o := out.(type) {
	case *appsv1.Deployment:
		rep, gen = &o.Spec.Replicas, &o.Generation
	case *appsv1.ReplicaSet:
		rep, gen = &o.Spec.Replicas, &o.Generation
	case *corev1.ReplicationController:
		rep, gen = &o.Spec.Replicas, &o.Generation
	}
	if *rep == nil || **rep != n {
		*rep = &n
		*gen++
	}
	return out, nil
}

// bind is POST pods/NAME/binding: the scheduler's way to set spec.nodeName, once.
func (s *Server) bind(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	obj, err := decode(r, corev1.SchemeGroupVersion.WithKind("Binding"), &corev1.Binding{})
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	b := obj.(*corev1.Binding)
	if b.Name != "" && b.Name != ri.name {
		writeError(w, badRequest("the name of the binding (%s) does not match the pod on the URL (%s)", b.Name, ri.name), ri.res.gr(), ri.name)
		return
	}
	var errs field.ErrorList
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		errs = append(errs, field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node"}))
	}
	if b.Target.Name == "" {
		errs = append(errs, field.Required(field.NewPath("target", "name"), "the node to bind to"))
	}
	if len(errs) > 0 {
		writeError(w, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), ri.name, errs), ri.res.gr(), ri.name)
		return
	}
	out := &corev1.Pod{}
	err = s.store.GuaranteedUpdate(r.Context(), ri.res.key(ri.namespace, ri.name), out, nil, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod).DeepCopy()
		if b.UID != "" && b.UID != pod.UID {
			return nil, conflict(ri, fmt.Sprintf("Precondition failed: UID in precondition: %s, UID in object meta: %s", b.UID, pod.UID))
		}
		if pod.DeletionTimestamp != nil {
			return nil, conflict(ri, fmt.Sprintf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
		}
		if pod.Spec.NodeName != "" {
			return nil, conflict(ri, fmt.Sprintf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setCondition(pod, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))})
		return pod, nil
	})
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	writeStatus(w, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

func setCondition(pod *corev1.Pod, c corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}
