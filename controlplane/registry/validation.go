package registry

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks a new object of one of the served types.
func Validate(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePod(o)
	case *corev1.Service:
		return validateService(o)
	case *appsv1.Deployment:
		errs := validateSelectorAndTemplate(o.Spec.Selector, &o.Spec.Template, field.NewPath("spec"))
		errs = append(errs, validateReplicas(o.Spec.Replicas, field.NewPath("spec", "replicas"))...)
		if o.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType && o.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			errs = append(errs, field.NotSupported(field.NewPath("spec", "strategy", "type"), o.Spec.Strategy.Type, []string{"Recreate", "RollingUpdate"}))
		}
		if ru := o.Spec.Strategy.RollingUpdate; ru != nil {
			p := field.NewPath("spec", "strategy", "rollingUpdate")
			errs = append(errs, validateIntOrPercent(ru.MaxSurge, p.Child("maxSurge"))...)
			errs = append(errs, validateIntOrPercent(ru.MaxUnavailable, p.Child("maxUnavailable"))...)
			if o.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
				errs = append(errs, field.Forbidden(p, "may not be specified when strategy `type` is 'Recreate'"))
			}
		}
		return errs
	case *appsv1.ReplicaSet:
		errs := validateSelectorAndTemplate(o.Spec.Selector, &o.Spec.Template, field.NewPath("spec"))
		return append(errs, validateReplicas(o.Spec.Replicas, field.NewPath("spec", "replicas"))...)
	case *corev1.ReplicationController:
		return validateRC(o)
	case *corev1.ConfigMap:
		return validateDataKeys(o.Data, o.BinaryData)
	case *corev1.Secret:
		var errs field.ErrorList
		for k := range o.Data {
			for _, msg := range validation.IsConfigMapKey(k) {
				errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
			}
		}
		return errs
	case *discoveryv1.EndpointSlice:
		return validateEndpointSlice(o)
	case *corev1.Endpoints:
		return validateEndpoints(o)
	case *corev1.Node:
		return validateNode(o)
	case *coordinationv1.Lease:
		if d := o.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
			return field.ErrorList{field.Invalid(field.NewPath("spec", "leaseDurationSeconds"), *d, "must be greater than 0")}
		}
	case *corev1.Event:
		if o.InvolvedObject.Namespace != "" && o.Namespace != "" && o.InvolvedObject.Namespace != o.Namespace {
			return field.ErrorList{field.Invalid(field.NewPath("involvedObject", "namespace"), o.InvolvedObject.Namespace, "does not match event.namespace")}
		}
	}
	return nil
}

// ValidateUpdate checks the immutable fields of an update, on top of Validate(obj).
func ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePodUpdate(o, old.(*corev1.Pod))
	case *corev1.Service:
		oo := old.(*corev1.Service)
		if o.Spec.Type != corev1.ServiceTypeExternalName && oo.Spec.Type != corev1.ServiceTypeExternalName &&
			oo.Spec.ClusterIP != "" && o.Spec.ClusterIP != oo.Spec.ClusterIP {
			return field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIP"), o.Spec.ClusterIP, "field is immutable")}
		}
	case *appsv1.Deployment:
		return apivalidation.ValidateImmutableField(o.Spec.Selector, old.(*appsv1.Deployment).Spec.Selector, field.NewPath("spec", "selector"))
	case *appsv1.ReplicaSet:
		return apivalidation.ValidateImmutableField(o.Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector, field.NewPath("spec", "selector"))
	case *corev1.ConfigMap:
		oo := old.(*corev1.ConfigMap)
		if oo.Immutable != nil && *oo.Immutable {
			if o.Immutable == nil || !*o.Immutable {
				return field.ErrorList{field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set")}
			}
			if !reflect.DeepEqual(o.Data, oo.Data) || !reflect.DeepEqual(o.BinaryData, oo.BinaryData) {
				return field.ErrorList{field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set")}
			}
		}
	case *corev1.Secret:
		oo := old.(*corev1.Secret)
		var errs field.ErrorList
		if o.Type != oo.Type {
			errs = append(errs, field.Invalid(field.NewPath("type"), o.Type, "field is immutable"))
		}
		if oo.Immutable != nil && *oo.Immutable {
			if o.Immutable == nil || !*o.Immutable {
				errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
			} else if !reflect.DeepEqual(o.Data, oo.Data) {
				errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
			}
		}
		return errs
	case *discoveryv1.EndpointSlice:
		return apivalidation.ValidateImmutableField(o.AddressType, old.(*discoveryv1.EndpointSlice).AddressType, field.NewPath("addressType"))
	case *corev1.Node:
		oo := old.(*corev1.Node)
		if oo.Spec.PodCIDR != "" && o.Spec.PodCIDR != oo.Spec.PodCIDR {
			return field.ErrorList{field.Forbidden(field.NewPath("spec", "podCIDR"), "node updates may not change podCIDR except from \"\" to valid")}
		}
	}
	return nil
}

// ValidateMeta checks metadata: name (with the resource's name rule), namespace, labels,
// annotations, owner references and finalizers.
func ValidateMeta(m *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	return apivalidation.ValidateObjectMeta(m, namespaced, nameFn, field.NewPath("metadata"))
}

func validateReplicas(r *int32, p *field.Path) field.ErrorList {
	if r != nil && *r < 0 {
		return field.ErrorList{field.Invalid(p, *r, "must be greater than or equal to 0")}
	}
	return nil
}

func validateIntOrPercent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			return field.ErrorList{field.Invalid(p, v.IntVal, "must be greater than or equal to 0")}
		}
		return nil
	}
	s := strings.TrimSuffix(v.StrVal, "%")
	if s == v.StrVal || len(s) == 0 || strings.Trim(s, "0123456789") != "" {
		return field.ErrorList{field.Invalid(p, v.StrVal, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '25%')")}
	}
	return nil
}

func validateSelectorAndTemplate(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sel == nil {
		return append(errs, field.Required(p.Child("selector"), ""))
	}
	errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(p.Child("selector"), sel, "empty selector is invalid for deployment"))
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(errs, field.Invalid(p.Child("selector"), sel, err.Error()))
	}
	if !s.Empty() && !s.Matches(labels.Set(tmpl.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
	}
	return append(errs, validateTemplate(tmpl, p.Child("template"))...)
}

func validateTemplate(tmpl *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabels(tmpl.Labels, p.Child("metadata", "labels"))
	errs = append(errs, apivalidation.ValidateAnnotations(tmpl.Annotations, p.Child("metadata", "annotations"))...)
	errs = append(errs, validatePodSpec(&tmpl.Spec, p.Child("spec"))...)
	if tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(p.Child("spec", "restartPolicy"), tmpl.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	return errs
}

func validateRC(o *corev1.ReplicationController) field.ErrorList {
	p := field.NewPath("spec")
	errs := validateReplicas(o.Spec.Replicas, p.Child("replicas"))
	if len(o.Spec.Selector) == 0 {
		errs = append(errs, field.Required(p.Child("selector"), ""))
	}
	errs = append(errs, metav1validation.ValidateLabels(o.Spec.Selector, p.Child("selector"))...)
	if o.Spec.Template == nil {
		return append(errs, field.Required(p.Child("template"), ""))
	}
	if !labels.SelectorFromSet(o.Spec.Selector).Matches(labels.Set(o.Spec.Template.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), o.Spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	return append(errs, validateTemplate(o.Spec.Template, p.Child("template"))...)
}

func validatePod(o *corev1.Pod) field.ErrorList {
	return validatePodSpec(&o.Spec, field.NewPath("spec"))
}

var supportedProtocols = []string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP)}

func validatePodSpec(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), "a pod needs at least one container"))
	}
	names := sets.New[string]()
	errs = append(errs, validateContainers(s.InitContainers, p.Child("initContainers"), names)...)
	errs = append(errs, validateContainers(s.Containers, p.Child("containers"), names)...)
	switch s.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), s.RestartPolicy, []string{"Always", "OnFailure", "Never"}))
	}
	switch s.DNSPolicy {
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault, corev1.DNSNone:
	default:
		errs = append(errs, field.NotSupported(p.Child("dnsPolicy"), s.DNSPolicy, []string{"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"}))
	}
	if s.DNSPolicy == corev1.DNSNone && (s.DNSConfig == nil || len(s.DNSConfig.Nameservers) == 0) {
		errs = append(errs, field.Required(p.Child("dnsConfig", "nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
	}
	if g := s.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be greater than or equal to 0"))
	}
	if a := s.ActiveDeadlineSeconds; a != nil && *a <= 0 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *a, "must be greater than 0"))
	}
	if s.NodeName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.NodeName) {
			errs = append(errs, field.Invalid(p.Child("nodeName"), s.NodeName, msg))
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(s.NodeSelector, p.Child("nodeSelector"))...)
	vols := sets.New[string]()
	for i, v := range s.Volumes {
		vp := p.Child("volumes").Index(i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if vols.Has(v.Name) {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		vols.Insert(v.Name)
	}
	for i, c := range append(append([]corev1.Container{}, s.InitContainers...), s.Containers...) {
		for j, m := range c.VolumeMounts {
			if !vols.Has(m.Name) {
				errs = append(errs, field.NotFound(p.Child("containers").Index(i).Child("volumeMounts").Index(j).Child("name"), m.Name))
			}
		}
	}
	return errs
}

func validateContainers(cs []corev1.Container, p *field.Path, names sets.Set[string]) field.ErrorList {
	var errs field.ErrorList
	for i, c := range cs {
		cp := p.Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(c.Name) {
				errs = append(errs, field.Invalid(cp.Child("name"), c.Name, msg))
			}
			if names.Has(c.Name) {
				errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
			}
			names.Insert(c.Name)
		}
		if strings.TrimSpace(c.Image) == "" {
			errs = append(errs, field.Required(cp.Child("image"), ""))
		}
		switch c.ImagePullPolicy {
		case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		default:
			errs = append(errs, field.NotSupported(cp.Child("imagePullPolicy"), c.ImagePullPolicy, []string{"Always", "IfNotPresent", "Never"}))
		}
		portNames := sets.New[string]()
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			if port.Name != "" {
				for _, msg := range validation.IsValidPortName(port.Name) {
					errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
				}
				if portNames.Has(port.Name) {
					errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
				}
				portNames.Insert(port.Name)
			}
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
			if port.HostPort != 0 {
				for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
					errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
				}
			}
			if !sets.New(supportedProtocols...).Has(string(port.Protocol)) {
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, supportedProtocols))
			}
		}
		for j, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				errs = append(errs, field.Invalid(cp.Child("env").Index(j).Child("name"), e.Name, msg))
			}
		}
	}
	return errs
}

// validatePodUpdate allows only image, activeDeadlineSeconds and added tolerations to change,
// as Kubernetes does.
func validatePodUpdate(o, old *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	spec := old.Spec.DeepCopy()
	for i := range spec.Containers {
		if i < len(o.Spec.Containers) {
			spec.Containers[i].Image = o.Spec.Containers[i].Image
		}
	}
	for i := range spec.InitContainers {
		if i < len(o.Spec.InitContainers) {
			spec.InitContainers[i].Image = o.Spec.InitContainers[i].Image
		}
	}
	spec.ActiveDeadlineSeconds = o.Spec.ActiveDeadlineSeconds
	if a := old.Spec.ActiveDeadlineSeconds; a != nil && (o.Spec.ActiveDeadlineSeconds == nil || *o.Spec.ActiveDeadlineSeconds > *a) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "activeDeadlineSeconds"), o.Spec.ActiveDeadlineSeconds, "must be less than or equal to the previous value"))
	}
	for _, t := range old.Spec.Tolerations {
		if !containsToleration(o.Spec.Tolerations, t) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "tolerations"), "existing toleration can not be modified except its tolerationSeconds"))
			break
		}
	}
	spec.Tolerations = o.Spec.Tolerations
	if !reflect.DeepEqual(*spec, o.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)"))
	}
	return errs
}

func containsToleration(ts []corev1.Toleration, t corev1.Toleration) bool {
	for _, x := range ts {
		if x.Key == t.Key && x.Operator == t.Operator && x.Value == t.Value && x.Effect == t.Effect {
			return true
		}
	}
	return false
}

func validateDataKeys(data map[string]string, bin map[string][]byte) field.ErrorList {
	var errs field.ErrorList
	for k := range data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
	}
	for k := range bin {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, msg))
		}
		if _, dup := data[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
	}
	return errs
}

var serviceTypes = []string{"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}

func validateService(s *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if !sets.New(serviceTypes...).Has(string(s.Spec.Type)) {
		errs = append(errs, field.NotSupported(sp.Child("type"), s.Spec.Type, serviceTypes))
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		if s.Spec.ExternalName == "" {
			errs = append(errs, field.Required(sp.Child("externalName"), "required when type is ExternalName"))
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(strings.TrimSuffix(s.Spec.ExternalName, ".")) {
				errs = append(errs, field.Invalid(sp.Child("externalName"), s.Spec.ExternalName, msg))
			}
		}
		if s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
			errs = append(errs, field.Forbidden(sp.Child("clusterIP"), "may not be set for ExternalName services"))
		}
	} else if len(s.Spec.Ports) == 0 && s.Spec.ClusterIP != corev1.ClusterIPNone {
		errs = append(errs, field.Required(sp.Child("ports"), ""))
	}
	if ip := s.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, field.Invalid(sp.Child("clusterIP"), ip, "must be empty, 'None', or a valid IP address"))
		}
	}
	headless := s.Spec.ClusterIP == corev1.ClusterIPNone
	if headless && (s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer) {
		errs = append(errs, field.Invalid(sp.Child("clusterIP"), s.Spec.ClusterIP, "may not be 'None' for "+string(s.Spec.Type)+" services"))
	}
	names := sets.New[string]()
	type key struct {
		port  int32
		proto corev1.Protocol
	}
	seen := map[key]bool{}
	for i, p := range s.Spec.Ports {
		pp := sp.Child("ports").Index(i)
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), "required when there is more than one port"))
		}
		if p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		if !sets.New(supportedProtocols...).Has(string(p.Protocol)) {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, supportedProtocols))
		}
		k := key{p.Port, p.Protocol}
		if seen[k] {
			errs = append(errs, field.Duplicate(pp, fmt.Sprintf("%d/%s", p.Port, p.Protocol)))
		}
		seen[k] = true
		switch p.TargetPort.Type {
		case intstr.Int:
			for _, msg := range validation.IsValidPortNum(int(p.TargetPort.IntVal)) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.IntVal, msg))
			}
		case intstr.String:
			for _, msg := range validation.IsValidPortName(p.TargetPort.StrVal) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.StrVal, msg))
			}
		}
		if p.NodePort != 0 {
			if s.Spec.Type != corev1.ServiceTypeNodePort && s.Spec.Type != corev1.ServiceTypeLoadBalancer {
				errs = append(errs, field.Forbidden(pp.Child("nodePort"), "may not be used when `type` is '"+string(s.Spec.Type)+"'"))
			}
			for _, msg := range validation.IsValidPortNum(int(p.NodePort)) {
				errs = append(errs, field.Invalid(pp.Child("nodePort"), p.NodePort, msg))
			}
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(s.Spec.Selector, sp.Child("selector"))...)
	switch s.Spec.SessionAffinity {
	case corev1.ServiceAffinityNone, corev1.ServiceAffinityClientIP:
	default:
		errs = append(errs, field.NotSupported(sp.Child("sessionAffinity"), s.Spec.SessionAffinity, []string{"None", "ClientIP"}))
	}
	if p := s.Spec.ExternalTrafficPolicy; p != "" && p != corev1.ServiceExternalTrafficPolicyCluster && p != corev1.ServiceExternalTrafficPolicyLocal {
		errs = append(errs, field.NotSupported(sp.Child("externalTrafficPolicy"), p, []string{"Cluster", "Local"}))
	}
	for i, ip := range s.Spec.ExternalIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, field.Invalid(sp.Child("externalIPs").Index(i), ip, "must be a valid IP address"))
		}
	}
	return errs
}

func validateEndpointSlice(e *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	switch e.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	default:
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), e.AddressType, []string{"IPv4", "IPv6", "FQDN"}))
	}
	for i, ep := range e.Endpoints {
		ap := field.NewPath("endpoints").Index(i).Child("addresses")
		if len(ep.Addresses) == 0 || len(ep.Addresses) > 100 {
			errs = append(errs, field.Invalid(ap, len(ep.Addresses), "must contain between 1 and 100 addresses"))
		}
		for j, a := range ep.Addresses {
			switch e.AddressType {
			case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
				ip, err := netip.ParseAddr(a)
				if err != nil || ip.Is4() != (e.AddressType == discoveryv1.AddressTypeIPv4) {
					errs = append(errs, field.Invalid(ap.Index(j), a, "must be a valid "+string(e.AddressType)+" address"))
				}
			case discoveryv1.AddressTypeFQDN:
				for _, msg := range validation.IsDNS1123Subdomain(a) {
					errs = append(errs, field.Invalid(ap.Index(j), a, msg))
				}
			}
		}
	}
	for i, p := range e.Ports {
		pp := field.NewPath("ports").Index(i)
		if p.Port != nil {
			for _, msg := range validation.IsValidPortNum(int(*p.Port)) {
				errs = append(errs, field.Invalid(pp.Child("port"), *p.Port, msg))
			}
		}
		if p.Protocol != nil && !sets.New(supportedProtocols...).Has(string(*p.Protocol)) {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), *p.Protocol, supportedProtocols))
		}
	}
	return errs
}

func validateEndpoints(e *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	for i, s := range e.Subsets {
		for j, a := range s.Addresses {
			if _, err := netip.ParseAddr(a.IP); err != nil {
				errs = append(errs, field.Invalid(field.NewPath("subsets").Index(i).Child("addresses").Index(j).Child("ip"), a.IP, "must be a valid IP address"))
			}
		}
		for j, p := range s.Ports {
			for _, msg := range validation.IsValidPortNum(int(p.Port)) {
				errs = append(errs, field.Invalid(field.NewPath("subsets").Index(i).Child("ports").Index(j).Child("port"), p.Port, msg))
			}
		}
	}
	return errs
}

func validateNode(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	if c := n.Spec.PodCIDR; c != "" {
		if _, err := netip.ParsePrefix(c); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "podCIDR"), c, "must be a valid CIDR"))
		}
	}
	for i, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
			if _, err := netip.ParseAddr(a.Address); err != nil {
				errs = append(errs, field.Invalid(field.NewPath("status", "addresses").Index(i).Child("address"), a.Address, "must be a valid IP address"))
			}
		}
	}
	return errs
}
