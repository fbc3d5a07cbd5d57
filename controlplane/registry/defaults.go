package registry

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DefaultSchedulerName is what pods get when they do not name a scheduler.
const DefaultSchedulerName = "default-scheduler"

// Default fills in the fields Kubernetes defaults, for the types that have defaults.
func Default(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Pod:
		defaultPodSpec(&o.Spec)
	case *corev1.Service:
		defaultService(o)
	case *corev1.Namespace:
		if o.Status.Phase == "" {
			o.Status.Phase = corev1.NamespaceActive
		}
	case *appsv1.Deployment:
		defaultDeployment(o)
	case *appsv1.ReplicaSet:
		if o.Spec.Replicas == nil {
			o.Spec.Replicas = ptr(int32(1))
		}
		defaultPodSpec(&o.Spec.Template.Spec)
	case *corev1.ReplicationController:
		if o.Spec.Replicas == nil {
			o.Spec.Replicas = ptr(int32(1))
		}
		if o.Spec.Template != nil {
			// core/v1 defaults the selector and the RC's labels from the template's labels.
			if len(o.Spec.Selector) == 0 && len(o.Spec.Template.Labels) > 0 {
				o.Spec.Selector = copyMap(o.Spec.Template.Labels)
			}
			if len(o.Labels) == 0 && len(o.Spec.Template.Labels) > 0 {
				o.Labels = copyMap(o.Spec.Template.Labels)
			}
			defaultPodSpec(&o.Spec.Template.Spec)
		}
	case *corev1.Secret:
		if o.Type == "" {
			o.Type = corev1.SecretTypeOpaque
		}
		// stringData is write-only: it is merged into data, as Kubernetes does on write.
		for k, v := range o.StringData {
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			o.Data[k] = []byte(v)
		}
		o.StringData = nil
	case *corev1.Node:
		if o.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 && len(o.Status.Addresses) > 0 {
			o.Status.DaemonEndpoints.KubeletEndpoint.Port = 10250
		}
	}
}

func ptr[T any](v T) *T { return &v }

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func defaultPodSpec(s *corev1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr(int64(30))
	}
	if s.SchedulerName == "" {
		s.SchedulerName = DefaultSchedulerName
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.EnableServiceLinks == nil {
		s.EnableServiceLinks = ptr(true)
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
}

func defaultContainer(c *corev1.Container) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = pullPolicyFor(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
}

// pullPolicyFor is Always for :latest or an untagged image, IfNotPresent otherwise, as in
// Kubernetes.
func pullPolicyFor(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	tag := ""
	if i := strings.LastIndex(name, ":"); i >= 0 {
		tag = name[i+1:]
	}
	if tag == "" || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func defaultService(s *corev1.Service) {
	sp := &s.Spec
	if sp.Type == "" {
		sp.Type = corev1.ServiceTypeClusterIP
	}
	if sp.SessionAffinity == "" {
		sp.SessionAffinity = corev1.ServiceAffinityNone
	}
	if sp.SessionAffinity == corev1.ServiceAffinityClientIP && sp.SessionAffinityConfig == nil {
		sp.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr(int32(10800))}}
	}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if sp.Type == corev1.ServiceTypeExternalName {
		return
	}
	if sp.InternalTrafficPolicy == nil {
		sp.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if (sp.Type == corev1.ServiceTypeNodePort || sp.Type == corev1.ServiceTypeLoadBalancer) && sp.ExternalTrafficPolicy == "" {
		sp.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if sp.Type == corev1.ServiceTypeLoadBalancer && sp.AllocateLoadBalancerNodePorts == nil {
		sp.AllocateLoadBalancerNodePorts = ptr(true)
	}
	if len(sp.IPFamilies) == 0 {
		sp.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	if sp.IPFamilyPolicy == nil {
		sp.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack)
	}
}

func defaultDeployment(d *appsv1.Deployment) {
	sp := &d.Spec
	if sp.Replicas == nil {
		sp.Replicas = ptr(int32(1))
	}
	if sp.Strategy.Type == "" {
		sp.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if sp.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if sp.Strategy.RollingUpdate == nil {
			sp.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if sp.Strategy.RollingUpdate.MaxUnavailable == nil {
			v := intstr.FromString("25%")
			sp.Strategy.RollingUpdate.MaxUnavailable = &v
		}
		if sp.Strategy.RollingUpdate.MaxSurge == nil {
			v := intstr.FromString("25%")
			sp.Strategy.RollingUpdate.MaxSurge = &v
		}
	}
	if sp.RevisionHistoryLimit == nil {
		sp.RevisionHistoryLimit = ptr(int32(10))
	}
	if sp.ProgressDeadlineSeconds == nil {
		sp.ProgressDeadlineSeconds = ptr(int32(600))
	}
	defaultPodSpec(&sp.Template.Spec)
}
