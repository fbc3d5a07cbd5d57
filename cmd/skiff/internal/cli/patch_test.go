package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"

	appsv1 "k8s.io/api/apps/v1"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return u
}

const deployV1 = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
      - name: sidecar
        image: busybox
`

// live simulates the server: what was applied (with its annotation) plus fields others set.
func live(t *testing.T, applied *unstructured.Unstructured, mutate func(u *unstructured.Unstructured)) *unstructured.Unstructured {
	t.Helper()
	modified, err := ModifiedConfig(applied)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(modified); err != nil {
		t.Fatal(err)
	}
	u.SetResourceVersion("42")
	u.SetUID("uid-1")
	_ = unstructured.SetNestedField(u.Object, int64(3), "status", "replicas")
	if mutate != nil {
		mutate(u)
	}
	return u
}

func TestModifiedConfigAnnotation(t *testing.T) {
	d := obj(t, deployV1)
	d.SetAnnotations(map[string]string{LastAppliedAnnotation: "stale", "team": "a"})
	b, err := ModifiedConfig(d)
	if err != nil {
		t.Fatal(err)
	}
	var m unstructured.Unstructured
	if err := m.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	la := m.GetAnnotations()[LastAppliedAnnotation]
	if !strings.HasSuffix(la, "\n") || strings.Contains(la, LastAppliedAnnotation) || !strings.Contains(la, `"team":"a"`) {
		t.Errorf("last-applied = %q: want the config without itself, newline-terminated like kubectl", la)
	}
	if d.GetAnnotations()[LastAppliedAnnotation] != "stale" {
		t.Error("ModifiedConfig changed its input")
	}
}

func TestApplyPatchUnchanged(t *testing.T) {
	d := obj(t, deployV1)
	l := live(t, d, nil)
	patch, pt, err := ApplyPatch(d, l)
	if err != nil {
		t.Fatal(err)
	}
	if string(patch) != "{}" || pt != types.StrategicMergePatchType {
		t.Errorf("re-apply patch = %s (%s), want {} strategic", patch, pt)
	}
}

func TestApplyPatchKeepsOthersFields(t *testing.T) {
	d := obj(t, deployV1)
	// Another writer scaled the deployment and added a label; the config did not mention either change.
	l := live(t, d, func(u *unstructured.Unstructured) {
		labels := u.GetLabels()
		labels["owner"] = "ops"
		u.SetLabels(labels)
	})
	patch, _, err := ApplyPatch(d, l)
	if err != nil {
		t.Fatal(err)
	}
	if string(patch) != "{}" {
		t.Errorf("patch = %s: apply must not touch fields it never set", patch)
	}
}

func TestApplyPatchChange(t *testing.T) {
	d := obj(t, deployV1)
	l := live(t, d, nil)
	next := obj(t, strings.NewReplacer("replicas: 3", "replicas: 5", "image: nginx:1.27", "image: nginx:1.28",
		`{name: B, value: "2"}`, `{name: C, value: "3"}`).Replace(deployV1))
	patch, pt, err := ApplyPatch(next, l)
	if err != nil {
		t.Fatal(err)
	}
	if pt != types.StrategicMergePatchType {
		t.Fatalf("patch type %s", pt)
	}
	// The patch applied to live must give the new config, and keep the sidecar (containers merge by name).
	cur, _ := l.MarshalJSON()
	out, err := strategicpatch.StrategicMergePatch(cur, patch, &appsv1.Deployment{})
	if err != nil {
		t.Fatalf("apply patch %s: %v", patch, err)
	}
	var got appsv1.Deployment
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Replicas != 5 {
		t.Errorf("replicas = %d", *got.Spec.Replicas)
	}
	cs := got.Spec.Template.Spec.Containers
	if len(cs) != 2 || cs[0].Image != "nginx:1.28" || cs[1].Name != "sidecar" {
		t.Errorf("containers = %+v", cs)
	}
	env := map[string]string{}
	for _, e := range cs[0].Env {
		env[e.Name] = e.Value
	}
	if len(env) != 2 || env["A"] != "1" || env["C"] != "3" {
		t.Errorf("env = %v: want A and C, B removed (it was in the last-applied config)", env)
	}
	if !strings.Contains(got.Annotations[LastAppliedAnnotation], "nginx:1.28") {
		t.Error("last-applied annotation not updated")
	}
	if got.Status.Replicas != 3 {
		t.Error("status was touched")
	}
}

func TestApplyPatchRemovesDroppedField(t *testing.T) {
	d := obj(t, deployV1)
	l := live(t, d, nil)
	next := obj(t, strings.Replace(deployV1, "  labels: {app: web}\n", "", 1))
	patch, _, err := ApplyPatch(next, l)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(patch), `"labels":null`) {
		t.Errorf("patch = %s: want metadata.labels removed", patch)
	}
}

func TestApplyPatchUnknownTypeUsesMergePatch(t *testing.T) {
	w := obj(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1, color: red}\n")
	l := live(t, w, nil)
	next := obj(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 2}\n")
	patch, pt, err := ApplyPatch(next, l)
	if err != nil {
		t.Fatal(err)
	}
	if pt != types.MergePatchType {
		t.Fatalf("patch type %s, want merge", pt)
	}
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil {
		t.Fatal(err)
	}
	spec := p["spec"].(map[string]any)
	if spec["size"] != float64(2) || spec["color"] != nil {
		t.Errorf("patch = %s", patch)
	}
	if _, ok := spec["color"]; !ok {
		t.Errorf("patch = %s: want color: null", patch)
	}
}

// An object created without apply (no annotation) is patched to the config without deleting anything.
func TestApplyPatchNoAnnotation(t *testing.T) {
	d := obj(t, deployV1)
	l := live(t, d, func(u *unstructured.Unstructured) { u.SetAnnotations(nil) })
	patch, _, err := ApplyPatch(d, l)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(patch), LastAppliedAnnotation) || strings.Contains(string(patch), "null") {
		t.Errorf("patch = %s: want only the annotation added", patch)
	}
}
