package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func TestClosest(t *testing.T) {
	names := []string{"pods", "pod", "po", "services", "svc", "deployments", "deploy", "configmaps", "nodes"}
	for in, want := range map[string]string{"pdos": "pods", "deploymnets": "deployments", "servces": "services", "xyzzy": "", "configmap": "configmaps"} {
		if got := closest(in, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTypeArgs(t *testing.T) {
	types, names, err := ParseTypeArgs([]string{"deploy/web", "svc/web", "deploy/api"})
	if err != nil || strings.Join(types, ",") != "deploy,svc" || strings.Join(names["deploy"], ",") != "web,api" {
		t.Errorf("%v %v %v", types, names, err)
	}
	if _, _, err := ParseTypeArgs([]string{"deploy/web", "api"}); err == nil {
		t.Error("mixed forms accepted")
	}
	if _, _, err := ParseTypeArgs([]string{"po,svc", "x"}); err == nil {
		t.Error("names with several types accepted")
	}
}

func TestParseLabelArgs(t *testing.T) {
	objs, ch, err := ParseLabelArgs([]string{"deploy", "web", "tier=front", "old-"})
	if err != nil || len(objs) != 2 || len(ch) != 2 || !ch[1].Remove || ch[0].Value != "front" {
		t.Errorf("%v %v %v", objs, ch, err)
	}
	if _, _, err := ParseLabelArgs([]string{"deploy/web", "bad key=x"}); err == nil {
		t.Error("bad key accepted")
	}
	if _, _, err := ParseLabelArgs([]string{"deploy/web"}); err == nil {
		t.Error("no changes accepted")
	}
}

func TestExplain(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", field.ErrorList{
		field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0"),
		field.Required(field.NewPath("spec", "selector"), ""),
	})
	got := Explain(fmt.Errorf("web.yaml: document 2 (line 5): Deployment web: %w", invalid), "").Error()
	for _, want := range []string{"web.yaml: document 2 (line 5): Deployment web: ", `Deployment.apps "web" is invalid`, "\n  * spec.replicas: Invalid value: -1", "\n  * spec.selector: Required value"} {
		if !strings.Contains(got, want) {
			t.Errorf("422 message %q lacks %q", got, want)
		}
	}
	if got := Explain(apierrors.NewUnauthorized("x"), "").Error(); !strings.Contains(got, "401") || !strings.Contains(got, "credentials") {
		t.Errorf("401: %q", got)
	}
	if got := Explain(apierrors.NewNotFound(gr, "web"), "").Error(); got != `deployments.apps "web" not found` {
		t.Errorf("404: %q", got)
	}
	if !errors.As(Explain(ErrSilent{Code: 3}, ""), &ErrSilent{}) {
		t.Error("silent error rewritten")
	}
}

func TestDeploymentStatus(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 2}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)}}
	d.Status.ObservedGeneration = 1
	if msg, done, _ := DeploymentStatus(d); done || !strings.Contains(msg, "spec update") {
		t.Errorf("unobserved: %q %v", msg, done)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 1}
	if msg, _, _ := DeploymentStatus(d); !strings.Contains(msg, "1 out of 3 new replicas") {
		t.Errorf("%q", msg)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 3}
	if msg, _, _ := DeploymentStatus(d); !strings.Contains(msg, "1 old replicas are pending") {
		t.Errorf("%q", msg)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}
	if msg, done, err := DeploymentStatus(d); !done || err != nil || !strings.Contains(msg, "successfully rolled out") {
		t.Errorf("%q %v %v", msg, done, err)
	}
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded"}}
	if _, _, err := DeploymentStatus(d); err == nil {
		t.Error("deadline exceeded not reported")
	}
}

func TestUndoPatch(t *testing.T) {
	tmpl := func(img string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "pod-template-hash": img}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: img}}}}
	}
	rs := func(rev, img string) appsv1.ReplicaSet {
		return appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-" + img, Annotations: map[string]string{revisionAnnotation: rev, changeCauseAnnotation: "to " + img}},
			Spec: appsv1.ReplicaSetSpec{Template: tmpl(img)}}
	}
	cur := tmpl("v2")
	delete(cur.Labels, "pod-template-hash")
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{revisionAnnotation: "2", LastAppliedAnnotation: "{}"}},
		Spec: appsv1.DeploymentSpec{Template: cur}}
	rss := []appsv1.ReplicaSet{rs("1", "v1"), rs("2", "v2")}
	patch, _, err := UndoPatch(d, rss, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := string(patch)
	for _, want := range []string{`"path":"/spec/template"`, `"image":"v1"`, `"kubernetes.io/change-cause":"to v1"`, `"deployment.kubernetes.io/revision":"2"`, LastAppliedAnnotation} {
		if !strings.Contains(p, want) {
			t.Errorf("patch %s lacks %s", p, want)
		}
	}
	if strings.Contains(p, "pod-template-hash") {
		t.Errorf("patch %s keeps the hash label", p)
	}
	if patch, msg, _ := UndoPatch(d, rss, 2); patch != nil || !strings.Contains(msg, "skipped") {
		t.Errorf("undo to current: %s %q", patch, msg)
	}
	if _, _, err := UndoPatch(d, rss, 7); err == nil {
		t.Error("missing revision accepted")
	}
	if _, _, err := UndoPatch(d, nil, 0); err == nil {
		t.Error("no history accepted")
	}
}
