package kubelet

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

type fakeObjects struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (f fakeObjects) ConfigMap(ns, name string) (*corev1.ConfigMap, error) {
	if c, ok := f.cms[ns+"/"+name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f fakeObjects) Secret(ns, name string) (*corev1.Secret, error) {
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func svc(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
}

func TestServiceEnv(t *testing.T) {
	svcs := []*corev1.Service{
		svc("default", "kubernetes", "10.96.0.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}),
		svc("web", "my-app", "10.96.5.5", corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}),
		svc("web", "headless", "None", corev1.ServicePort{Port: 80}),
		svc("other", "elsewhere", "10.96.9.9", corev1.ServicePort{Port: 1}),
	}
	got := map[string]string{}
	for _, e := range serviceEnv(svcs, "web", true) {
		got[e.Name] = e.Value
	}
	want := map[string]string{
		"MY_APP_SERVICE_HOST":           "10.96.5.5",
		"MY_APP_SERVICE_PORT":           "80",
		"MY_APP_SERVICE_PORT_HTTP":      "80",
		"MY_APP_SERVICE_PORT_DNS":       "53",
		"MY_APP_PORT":                   "tcp://10.96.5.5:80",
		"MY_APP_PORT_80_TCP":            "tcp://10.96.5.5:80",
		"MY_APP_PORT_80_TCP_PROTO":      "tcp",
		"MY_APP_PORT_80_TCP_PORT":       "80",
		"MY_APP_PORT_80_TCP_ADDR":       "10.96.5.5",
		"MY_APP_PORT_53_UDP":            "udp://10.96.5.5:53",
		"MY_APP_PORT_53_UDP_PROTO":      "udp",
		"KUBERNETES_SERVICE_HOST":       "10.96.0.1",
		"KUBERNETES_SERVICE_PORT":       "443",
		"KUBERNETES_PORT_443_TCP":       "tcp://10.96.0.1:443",
		"KUBERNETES_SERVICE_PORT_HTTPS": "443",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "HEADLESS") || strings.HasPrefix(k, "ELSEWHERE") {
			t.Errorf("unexpected %s", k)
		}
	}
	// enableServiceLinks=false keeps only the master service.
	for _, e := range serviceEnv(svcs, "web", false) {
		if !strings.HasPrefix(e.Name, "KUBERNETES_") {
			t.Errorf("links disabled but got %s", e.Name)
		}
	}
}

func TestMakeEnv(t *testing.T) {
	objs := fakeObjects{
		cms:     map[string]*corev1.ConfigMap{"ns/cfg": {Data: map[string]string{"A": "1", "B": "2"}}},
		secrets: map[string]*corev1.Secret{"ns/sec": {Data: map[string][]byte{"pw": []byte("x")}}},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{NodeName: "n1"}}
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr.To(true)}},
		},
		Env: []corev1.EnvVar{
			{Name: "A", Value: "override"},
			{Name: "REF", Value: "$(B)-$(NOPE)-$$(B)"},
			{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "nokey", Optional: ptr.To(true)}}},
		},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
	}
	env, err := makeEnv(envInput{Pod: pod, C: c, PodIP: "10.244.0.5", HostIP: "10.0.0.1", Objects: objs, NotFound: apierrors.IsNotFound,
		Services: []*corev1.Service{svc("ns", "db", "10.96.1.1", corev1.ServicePort{Port: 5432})}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A=override", "B=2", "S_pw=x", "REF=2-$(NOPE)-$(B)", "NAME=p", "IP=10.244.0.5", "APP=web", "MEM=64", "DB_SERVICE_HOST=10.96.1.1"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e, "OPT=") {
			t.Errorf("optional missing key set: %s", e)
		}
	}
	// A missing, non-optional ConfigMap names the field.
	c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}}}}
	_, err = makeEnv(envInput{Pod: pod, C: c, Objects: objs, NotFound: apierrors.IsNotFound})
	if err == nil || !strings.Contains(err.Error(), `envFrom[0].configMapRef: configmap "missing"`) {
		t.Fatalf("error %v", err)
	}
	var nf *apierrors.StatusError
	if !errors.As(err, &nf) {
		t.Fatalf("cause lost: %v", err)
	}
}

func TestExpand(t *testing.T) {
	vals := map[string]string{"A": "x", "B": "y"}
	for in, want := range map[string]string{
		"$(A)":     "x",
		"$(A)$(B)": "xy",
		"$$(A)":    "$(A)",
		"$(C)":     "$(C)",
		"a$b":      "a$b",
		"$(A":      "$(A",
		"end$":     "end$",
		"$$$(A)":   "$x",
		"no refs":  "no refs",
	} {
		if got := expand(in, vals); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolvConf(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "web"}}
	got := resolvConf(pod, "10.96.0.10", "cluster.local", "")
	want := "search web.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
	if got != want {
		t.Errorf("ClusterFirst:\n%s\nwant\n%s", got, want)
	}
	pod.Spec.DNSPolicy = corev1.DNSNone
	pod.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}}}
	if got := resolvConf(pod, "10.96.0.10", "cluster.local", ""); got != "nameserver 1.1.1.1\noptions ndots:2\n" {
		t.Errorf("None: %q", got)
	}
	pod.Spec.DNSPolicy = corev1.DNSDefault
	pod.Spec.DNSConfig = nil
	if got := resolvConf(pod, "10.96.0.10", "cluster.local", "nameserver 9.9.9.9\nsearch corp\n"); got != "search corp\nnameserver 9.9.9.9\n" {
		t.Errorf("Default: %q", got)
	}
}

// FuzzExpand: expansion never panics and leaves strings without '$' alone.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"$(A)", "$$(A)", "$(", "a$", "$(A)$(B", "$$$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := expand(s, map[string]string{"A": "x", "B": ""})
		if !strings.Contains(s, "$") && out != s {
			t.Fatalf("expand(%q) = %q", s, out)
		}
	})
}
