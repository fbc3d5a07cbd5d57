package kubelet

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// objects gives the ConfigMaps and Secrets env and volumes refer to.
type objects interface {
	ConfigMap(namespace, name string) (*corev1.ConfigMap, error)
	Secret(namespace, name string) (*corev1.Secret, error)
}

// serviceEnv returns the Docker-links style variables Kubernetes gives a pod for every
// service of its namespace (and the `kubernetes` service of `default`), sorted by name.
func serviceEnv(services []*corev1.Service, namespace string, enableLinks bool) []corev1.EnvVar {
	var picked []*corev1.Service
	seen := map[string]bool{}
	for _, s := range services {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		if s.Namespace == namespace && enableLinks {
			picked = append(picked, s)
			seen[s.Name] = true
		}
	}
	for _, s := range services {
		// The master service is always there, unless the namespace has its own "kubernetes".
		if s.Namespace == "default" && s.Name == "kubernetes" && !seen["kubernetes"] && s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
			if namespace != "default" || !enableLinks {
				picked = append(picked, s)
			}
		}
	}
	sort.Slice(picked, func(i, j int) bool { return picked[i].Name < picked[j].Name })
	var out []corev1.EnvVar
	for _, s := range picked {
		if len(s.Spec.Ports) == 0 {
			continue
		}
		name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		ip := s.Spec.ClusterIP
		first := s.Spec.Ports[0]
		out = append(out,
			corev1.EnvVar{Name: name + "_SERVICE_HOST", Value: ip},
			corev1.EnvVar{Name: name + "_SERVICE_PORT", Value: strconv.Itoa(int(first.Port))})
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				pn := strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))
				out = append(out, corev1.EnvVar{Name: name + "_SERVICE_PORT_" + pn, Value: strconv.Itoa(int(p.Port))})
			}
		}
		out = append(out, corev1.EnvVar{Name: name + "_PORT", Value: portURL(ip, first)})
		for _, p := range s.Spec.Ports {
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			pre := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, strings.ToUpper(proto))
			out = append(out,
				corev1.EnvVar{Name: pre, Value: portURL(ip, p)},
				corev1.EnvVar{Name: pre + "_PROTO", Value: strings.ToLower(proto)},
				corev1.EnvVar{Name: pre + "_PORT", Value: strconv.Itoa(int(p.Port))},
				corev1.EnvVar{Name: pre + "_ADDR", Value: ip})
		}
	}
	return out
}

func portURL(ip string, p corev1.ServicePort) string {
	proto := strings.ToLower(string(p.Protocol))
	if proto == "" {
		proto = "tcp"
	}
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("%s://%s:%d", proto, ip, p.Port)
}

// envInput is what a container's environment is made from.
type envInput struct {
	Pod      *corev1.Pod
	C        *corev1.Container
	Services []*corev1.Service
	PodIP    string
	HostIP   string
	Objects  objects
	NotFound func(error) bool
}

// makeEnv computes a container's environment in Kubernetes' order of precedence: service
// variables, then envFrom, then env (later wins), with $(VAR) expansion in env values.
func makeEnv(in envInput) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	links := in.Pod.Spec.EnableServiceLinks == nil || *in.Pod.Spec.EnableServiceLinks
	for _, e := range serviceEnv(in.Services, in.Pod.Namespace, links) {
		set(e.Name, e.Value)
	}
	ns := in.Pod.Namespace
	for i, ef := range in.C.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := in.Objects.ConfigMap(ns, ef.ConfigMapRef.Name)
			if err != nil {
				if optional(ef.ConfigMapRef.Optional) && in.NotFound(err) {
					continue
				}
				return nil, fmt.Errorf("envFrom[%d].configMapRef: configmap %q: %w", i, ef.ConfigMapRef.Name, err)
			}
			for _, k := range sortedKeys(cm.Data) {
				set(ef.Prefix+k, cm.Data[k])
			}
		case ef.SecretRef != nil:
			s, err := in.Objects.Secret(ns, ef.SecretRef.Name)
			if err != nil {
				if optional(ef.SecretRef.Optional) && in.NotFound(err) {
					continue
				}
				return nil, fmt.Errorf("envFrom[%d].secretRef: secret %q: %w", i, ef.SecretRef.Name, err)
			}
			keys := make([]string, 0, len(s.Data)+len(s.StringData))
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				set(ef.Prefix+k, string(s.Data[k]))
			}
		}
	}
	for _, e := range in.C.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vals))
			continue
		}
		v, skip, err := valueFrom(in, e)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if !skip {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func valueFrom(in envInput, e corev1.EnvVar) (string, bool, error) {
	vf := e.ValueFrom
	ns := in.Pod.Namespace
	switch {
	case vf.ConfigMapKeyRef != nil:
		r := vf.ConfigMapKeyRef
		cm, err := in.Objects.ConfigMap(ns, r.Name)
		if err != nil {
			if optional(r.Optional) && in.NotFound(err) {
				return "", true, nil
			}
			return "", false, fmt.Errorf("configMapKeyRef: configmap %q: %w", r.Name, err)
		}
		v, ok := cm.Data[r.Key]
		if !ok {
			if optional(r.Optional) {
				return "", true, nil
			}
			return "", false, fmt.Errorf("configMapKeyRef: configmap %q has no key %q", r.Name, r.Key)
		}
		return v, false, nil
	case vf.SecretKeyRef != nil:
		r := vf.SecretKeyRef
		s, err := in.Objects.Secret(ns, r.Name)
		if err != nil {
			if optional(r.Optional) && in.NotFound(err) {
				return "", true, nil
			}
			return "", false, fmt.Errorf("secretKeyRef: secret %q: %w", r.Name, err)
		}
		v, ok := s.Data[r.Key]
		if !ok {
			if optional(r.Optional) {
				return "", true, nil
			}
			return "", false, fmt.Errorf("secretKeyRef: secret %q has no key %q", r.Name, r.Key)
		}
		return string(v), false, nil
	case vf.FieldRef != nil:
		v, err := fieldValue(in.Pod, vf.FieldRef.FieldPath, in.PodIP, in.HostIP)
		return v, false, err
	case vf.ResourceFieldRef != nil:
		v, err := resourceValue(in.C, vf.ResourceFieldRef)
		return v, false, err
	}
	return "", false, fmt.Errorf("valueFrom names no source")
}

// fieldValue answers a downward-API fieldRef.
func fieldValue(pod *corev1.Pod, path, podIP, hostIP string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "metadata.labels", "metadata.annotations":
		m := pod.Labels
		if path == "metadata.annotations" {
			m = pod.Annotations
		}
		var b strings.Builder
		for _, k := range sortedKeys(m) {
			fmt.Fprintf(&b, "%s=%q\n", k, m[k])
		}
		return b.String(), nil
	}
	for _, pre := range []string{"metadata.labels['", "metadata.annotations['"} {
		if strings.HasPrefix(path, pre) && strings.HasSuffix(path, "']") {
			key := strings.TrimSuffix(strings.TrimPrefix(path, pre), "']")
			if strings.HasPrefix(pre, "metadata.labels") {
				return pod.Labels[key], nil
			}
			return pod.Annotations[key], nil
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported (use metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], spec.nodeName, status.podIP, status.hostIP)", path)
}

func resourceValue(c *corev1.Container, r *corev1.ResourceFieldSelector) (string, error) {
	var q resource.Quantity
	var ok bool
	switch r.Resource {
	case "limits.cpu":
		q, ok = c.Resources.Limits[corev1.ResourceCPU]
	case "limits.memory":
		q, ok = c.Resources.Limits[corev1.ResourceMemory]
	case "requests.cpu":
		q, ok = c.Resources.Requests[corev1.ResourceCPU]
	case "requests.memory":
		q, ok = c.Resources.Requests[corev1.ResourceMemory]
	default:
		return "", fmt.Errorf("resourceFieldRef %q is not supported", r.Resource)
	}
	if !ok {
		return "0", nil
	}
	div := r.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if strings.HasSuffix(r.Resource, "cpu") {
		v := (q.MilliValue() + div.MilliValue() - 1) / div.MilliValue()
		return strconv.FormatInt(v, 10), nil
	}
	return strconv.FormatInt((q.Value()+div.Value()-1)/div.Value(), 10), nil
}

// expand replaces $(VAR) with earlier variables' values, leaves unknown references as they
// are and turns $$ into $, as Kubernetes does.
func expand(s string, vals map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vals[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func optional(b *bool) bool { return b != nil && *b }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
