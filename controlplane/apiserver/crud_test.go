package apiserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

// TestCRUDEveryResource runs create, get, list, update, patch and delete for every served
// resource through the dynamic client.
func TestCRUDEveryResource(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(env.Config)
	ns := newNS(t, env)
	podSpec := map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox:1.36"}}}
	tmpl := map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "x"}}, "spec": podSpec}
	sel := map[string]any{"matchLabels": map[string]any{"app": "x"}}
	cases := []struct {
		gvr        schema.GroupVersionResource
		kind       string
		namespaced bool
		body       map[string]any
	}{
		{corev1.SchemeGroupVersion.WithResource("namespaces"), "Namespace", false, nil},
		{corev1.SchemeGroupVersion.WithResource("nodes"), "Node", false, nil},
		{corev1.SchemeGroupVersion.WithResource("pods"), "Pod", true, map[string]any{"spec": podSpec}},
		{corev1.SchemeGroupVersion.WithResource("services"), "Service", true, map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": int64(80)}}}}},
		{corev1.SchemeGroupVersion.WithResource("endpoints"), "Endpoints", true, nil},
		{corev1.SchemeGroupVersion.WithResource("replicationcontrollers"), "ReplicationController", true, map[string]any{"spec": map[string]any{"template": tmpl}}},
		{corev1.SchemeGroupVersion.WithResource("configmaps"), "ConfigMap", true, map[string]any{"data": map[string]any{"k": "v"}}},
		{corev1.SchemeGroupVersion.WithResource("secrets"), "Secret", true, map[string]any{"stringData": map[string]any{"k": "v"}}},
		{corev1.SchemeGroupVersion.WithResource("events"), "Event", true, map[string]any{"involvedObject": map[string]any{"kind": "Pod", "name": "p", "namespace": ns}, "reason": "Test"}},
		{corev1.SchemeGroupVersion.WithResource("serviceaccounts"), "ServiceAccount", true, nil},
		{appsv1.SchemeGroupVersion.WithResource("deployments"), "Deployment", true, map[string]any{"spec": map[string]any{"selector": sel, "template": tmpl}}},
		{appsv1.SchemeGroupVersion.WithResource("replicasets"), "ReplicaSet", true, map[string]any{"spec": map[string]any{"selector": sel, "template": tmpl}}},
		{schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}, "EndpointSlice", true,
			map[string]any{"addressType": "IPv4", "endpoints": []any{map[string]any{"addresses": []any{"10.244.0.5"}}}}},
		{schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, "Lease", true, map[string]any{"spec": map[string]any{"holderIdentity": "a"}}},
	}
	for _, c := range cases {
		t.Run(c.gvr.Resource, func(t *testing.T) {
			obj := map[string]any{"apiVersion": c.gvr.GroupVersion().String(), "kind": c.kind, "metadata": map[string]any{"name": "crud-1"}}
			for k, v := range c.body {
				obj[k] = v
			}
			var ri dynamic.ResourceInterface = dyn.Resource(c.gvr)
			if c.namespaced {
				ri = dyn.Resource(c.gvr).Namespace(ns)
			}
			created, err := ri.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if created.GetUID() == "" || created.GetResourceVersion() == "" || created.GetCreationTimestamp().Time.IsZero() {
				t.Fatalf("create did not set uid/resourceVersion/creationTimestamp: %v", created.Object["metadata"])
			}
			got, err := ri.Get(ctx, "crud-1", metav1.GetOptions{})
			if err != nil || got.GetUID() != created.GetUID() {
				t.Fatalf("get: %v", err)
			}
			list, err := ri.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=crud-1"})
			if err != nil || len(list.Items) != 1 {
				t.Fatalf("list: %v (%d items)", err, len(list.Items))
			}
			got.SetLabels(map[string]string{"updated": "yes"})
			upd, err := ri.Update(ctx, got, metav1.UpdateOptions{})
			if err != nil || upd.GetLabels()["updated"] != "yes" {
				t.Fatalf("update: %v", err)
			}
			pat, err := ri.Patch(ctx, "crud-1", types.MergePatchType, []byte(`{"metadata":{"labels":{"patched":"yes"}}}`), metav1.PatchOptions{})
			if err != nil || pat.GetLabels()["patched"] != "yes" || pat.GetLabels()["updated"] != "yes" {
				t.Fatalf("patch: %v %v", err, pat)
			}
			if err := ri.Delete(ctx, "crud-1", metav1.DeleteOptions{}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if c.kind == "Namespace" {
				// namespaces terminate: check, finalize, then they are gone
				got, err := ri.Get(ctx, "crud-1", metav1.GetOptions{})
				if err != nil || got.GetDeletionTimestamp() == nil {
					t.Fatalf("namespace not terminating: %v", err)
				}
				nsObj, _ := env.Client.CoreV1().Namespaces().Get(ctx, "crud-1", metav1.GetOptions{})
				nsObj.Spec.Finalizers = nil
				if _, err := env.Client.CoreV1().Namespaces().Finalize(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
					t.Fatalf("finalize: %v", err)
				}
			}
			if _, err := ri.Get(ctx, "crud-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("get after delete: want 404, got %v", err)
			}
		})
	}
}

func TestConflictsAndInvalid(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := newNS(t, env)
	cms := env.Client.CoreV1().ConfigMaps(ns)
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("want AlreadyExists, got %v", err)
	}
	cm.Data = map[string]string{"x": "1"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"x": "2"} // stale resourceVersion
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("want Conflict, got %v", err)
	}

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "a", Port: 70000}, {Name: "a", Port: 81, Protocol: "ICMP"}}}}
	_, err = env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	se := wantStatus(t, err, 422)
	fields := map[string]bool{}
	for _, c := range se.ErrStatus.Details.Causes {
		fields[c.Field] = true
	}
	for _, f := range []string{"spec.ports[0].port", "spec.ports[1].name", "spec.ports[1].protocol"} {
		if !fields[f] {
			t.Errorf("422 lacks a cause for %s: %v", f, se.ErrStatus.Details.Causes)
		}
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "b"}}, Spec: pod("x").Spec}}}
	_, err = env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	se = wantStatus(t, err, 422)
	fields = map[string]bool{}
	for _, c := range se.ErrStatus.Details.Causes {
		fields[c.Field] = true
	}
	if !fields["metadata.name"] || !fields["spec.template.metadata.labels"] {
		t.Errorf("want causes metadata.name and spec.template.metadata.labels, got %v", se.ErrStatus.Details.Causes)
	}
	// immutable selector
	d.Name, d.Spec.Template.Labels = "good", map[string]string{"app": "a"}
	d, err = env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "z"}}
	d.Spec.Template.Labels = map[string]string{"app": "z"}
	_, err = env.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
	wantStatus(t, err, 422)
	// missing namespace
	_, err = env.Client.CoreV1().ConfigMaps("nope").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("create in missing namespace: want 404, got %v", err)
	}
}

func TestStrictDecoding(t *testing.T) {
	env := testenv.Start(t)
	ns := newNS(t, env)
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	cases := []struct{ name, ct, body, want string }{
		{"unknown field", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"dataa":{"k":"v"}}`, `dataa`},
		{"unknown nested", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","lables":{}}}`, `metadata.lables`},
		{"wrong kind", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"}}`, `Secret`},
		{"bad version", "application/json", `{"apiVersion":"v9","kind":"ConfigMap","metadata":{"name":"a"}}`, `v9`},
		{"malformed", "application/json", `{"apiVersion":"v1",`, ``},
		{"yaml unknown", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nbogus: 1\n", `bogus`},
	}
	for _, c := range cases {
		code, body := raw(t, env, "admin", "POST", path, c.ct, c.body)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s: want 400 mentioning %q, got %d %s", c.name, c.want, code, body)
		}
	}
	code, body := raw(t, env, "admin", "POST", path, "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromyaml\ndata:\n  k: v\n")
	if code != 201 {
		t.Fatalf("yaml create: %d %s", code, body)
	}
	list, _ := env.Client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
	if len(list.Items) != 1 {
		t.Fatalf("bad input stored something: %d configmaps", len(list.Items))
	}
}

func TestDiscoveryAndKubeconfig(t *testing.T) {
	env := testenv.Start(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	found := map[string]bool{}
	for _, l := range lists {
		for _, r := range l.APIResources {
			found[l.GroupVersion+"/"+r.Name] = true
		}
	}
	for _, want := range []string{"v1/pods", "v1/pods/status", "v1/pods/binding", "v1/services", "apps/v1/deployments/scale",
		"discovery.k8s.io/v1/endpointslices", "coordination.k8s.io/v1/leases", "v1/events", "v1/nodes/status"} {
		if !found[want] {
			t.Errorf("discovery lacks %s", want)
		}
	}
	v, err := dc.ServerVersion()
	if err != nil || v.Major != "1" {
		t.Fatalf("version: %v %v", v, err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "kube-system", metav1.GetOptions{}); err != nil {
		t.Fatalf("kubeconfig client: %v", err)
	}
	for _, p := range []string{"/healthz", "/readyz", "/livez"} {
		if code, _ := raw(t, env, "", "GET", p, "", ""); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	code, body := raw(t, env, "admin", "GET", "/metrics", "", "")
	if code != 200 || !strings.Contains(body, "skiff_apiserver_request_total") || !strings.Contains(body, "skiff_apiserver_request_duration_seconds") {
		t.Errorf("metrics: %d", code)
	}
}
