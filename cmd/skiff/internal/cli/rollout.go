package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

const (
	revisionAnnotation    = "deployment.kubernetes.io/revision"
	changeCauseAnnotation = "kubernetes.io/change-cause"
	restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
)

// rollbackSkip are the annotations undo keeps from the deployment instead of the ReplicaSet.
var rollbackSkip = map[string]bool{
	LastAppliedAnnotation:                       true,
	revisionAnnotation:                          true,
	"deployment.kubernetes.io/revision-history": true,
	"deployment.kubernetes.io/desired-replicas": true,
	"deployment.kubernetes.io/max-replicas":     true,
	"deprecated.deployment.rollback.to":         true,
}

// deploymentName accepts deploy/NAME, deployment/NAME, deployments.apps/NAME or "deploy NAME".
func (f *Factory) deploymentName(args []string) (string, error) {
	refs, err := f.resolveRefs(args)
	if err != nil {
		return "", err
	}
	if len(refs) != 1 {
		return "", errors.New("name exactly one deployment: deploy/NAME")
	}
	if gk := refs[0].res.GVK.GroupKind(); gk.Group != "apps" || gk.Kind != "Deployment" {
		return "", fmt.Errorf("rollout works on deployments, not %s: use deploy/NAME", refs[0].res.GVR.Resource)
	}
	return refs[0].name, nil
}

// getDeployment fetches the deployment that args name.
func (f *Factory) getDeployment(ctx context.Context, args []string) (kubernetes.Interface, *appsv1.Deployment, error) {
	name, err := f.deploymentName(args)
	if err != nil {
		return nil, nil, err
	}
	kube, err := f.Kube()
	if err != nil {
		return nil, nil, err
	}
	d, err := kube.AppsV1().Deployments(f.Namespace()).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	return kube, d, nil
}

// RolloutStatus prints progress until the deployment's rollout finishes (nil), fails with
// ProgressDeadlineExceeded (exit 1) or the timeout passes (exit 1).
func (f *Factory) RolloutStatus(ctx context.Context, args []string, timeout time.Duration, watch bool) error {
	name, err := f.deploymentName(args)
	if err != nil {
		return err
	}
	kube, err := f.Kube()
	if err != nil {
		return err
	}
	ns := f.Namespace()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	last := ""
	for {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return &ExitError{Code: 130, Err: errors.New("interrupted")}
			}
			return err
		}
		msg, done, err := DeploymentStatus(d)
		if err != nil {
			return &ExitError{Code: 1, Err: err}
		}
		if msg != last {
			fmt.Fprintln(f.Out, msg)
			last = msg
		}
		if done {
			return nil
		}
		if !watch {
			return nil // kubectl --watch=false: report once
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return &ExitError{Code: 1, Err: fmt.Errorf("timed out after %s waiting for deployment %q to roll out: %s", timeout, name, strings.TrimSuffix(msg, "..."))}
		}
		select {
		case <-ctx.Done():
			return &ExitError{Code: 130, Err: errors.New("interrupted")}
		case <-time.After(time.Second):
		}
	}
}

// DeploymentStatus is kubectl's rollout status logic: a message, whether the rollout is done,
// and an error when it failed.
func DeploymentStatus(d *appsv1.Deployment) (string, bool, error) {
	if d.Generation > d.Status.ObservedGeneration {
		return "Waiting for deployment spec update to be observed...", false, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return "", false, fmt.Errorf("deployment %q exceeded its progress deadline", d.Name)
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.UpdatedReplicas < want:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", d.Name, s.UpdatedReplicas, want), false, nil
	case s.Replicas > s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", d.Name, s.Replicas-s.UpdatedReplicas), false, nil
	case s.AvailableReplicas < s.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", d.Name, s.AvailableReplicas, s.UpdatedReplicas), false, nil
	}
	return fmt.Sprintf("deployment %q successfully rolled out", d.Name), true, nil
}

// ownedReplicaSets lists the deployment's ReplicaSets by revision, oldest first.
func (f *Factory) ownedReplicaSets(ctx context.Context, d *appsv1.Deployment) ([]appsv1.ReplicaSet, error) {
	kube, err := f.Kube()
	if err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s selector: %w", d.Name, err)
	}
	list, err := kube.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	var out []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if c := metav1.GetControllerOf(&rs); c != nil && c.UID == d.UID {
			out = append(out, rs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return revision(&out[i]) < revision(&out[j]) })
	return out, nil
}

func revision(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	return n
}

// RolloutHistory lists revisions, or shows one revision's pod template.
func (f *Factory) RolloutHistory(ctx context.Context, args []string, rev int64) error {
	_, d, err := f.getDeployment(ctx, args)
	if err != nil {
		return err
	}
	name := d.Name
	rss, err := f.ownedReplicaSets(ctx, d)
	if err != nil {
		return err
	}
	if rev > 0 {
		for _, rs := range rss {
			if revision(&rs) == rev {
				b, err := yaml.Marshal(rs.Spec.Template)
				if err != nil {
					return err
				}
				fmt.Fprintf(f.Out, "deployment.apps/%s with revision #%d\nPod Template:\n%s", name, rev, indent(string(b), "  "))
				return nil
			}
		}
		return fmt.Errorf("deployment %q has no revision %d", name, rev)
	}
	fmt.Fprintf(f.Out, "deployment.apps/%s\n", name)
	tw := tabwriter.NewWriter(f.Out, 6, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tCHANGE-CAUSE")
	for _, rs := range rss {
		cause := rs.Annotations[changeCauseAnnotation]
		fmt.Fprintf(tw, "%d\t%s\n", revision(&rs), orNone(cause))
	}
	tw.Flush()
	if len(rss) == 0 {
		fmt.Fprintln(f.ErrOut, "no revisions yet: the deployment controller has not created a ReplicaSet")
	}
	return nil
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// RolloutUndo puts the pod template of an earlier revision (default: the previous one) back
// into the deployment, with a JSON patch of the template and annotations, as kubectl does.
func (f *Factory) RolloutUndo(ctx context.Context, args []string, toRevision int64, dryRun bool) error {
	kube, d, err := f.getDeployment(ctx, args)
	if err != nil {
		return err
	}
	name := d.Name
	if d.Spec.Paused {
		return fmt.Errorf("deployment %q is paused: resume it before undoing", name)
	}
	rss, err := f.ownedReplicaSets(ctx, d)
	if err != nil {
		return err
	}
	patch, msg, err := UndoPatch(d, rss, toRevision)
	if err != nil {
		return err
	}
	if patch == nil {
		fmt.Fprintf(f.Out, "deployment.apps/%s %s\n", name, msg)
		return nil
	}
	var dr []string
	if dryRun {
		dr = []string{metav1.DryRunAll}
	}
	if _, err := kube.AppsV1().Deployments(d.Namespace).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{DryRun: dr, FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("roll back deployment %q: %w", name, err)
	}
	fmt.Fprintf(f.Out, "deployment.apps/%s rolled back\n", name)
	return nil
}

// UndoPatch computes undo's JSON patch; a nil patch with a message means there is nothing to do.
func UndoPatch(d *appsv1.Deployment, rss []appsv1.ReplicaSet, toRevision int64) ([]byte, string, error) {
	if len(rss) == 0 {
		return nil, "", fmt.Errorf("deployment %q has no rollout history: its ReplicaSets do not exist (yet)", d.Name)
	}
	var target *appsv1.ReplicaSet
	if toRevision > 0 {
		for i := range rss {
			if revision(&rss[i]) == toRevision {
				target = &rss[i]
			}
		}
		if target == nil {
			return nil, "", fmt.Errorf("deployment %q has no revision %d: see `skiff rollout history deploy/%s`", d.Name, toRevision, d.Name)
		}
	} else {
		// The previous revision: the highest one below the current (highest) revision.
		if len(rss) < 2 {
			return nil, "", fmt.Errorf("deployment %q has no previous revision to roll back to", d.Name)
		}
		target = &rss[len(rss)-2]
	}
	tmpl := target.Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if templatesEqual(tmpl, &d.Spec.Template) {
		return nil, fmt.Sprintf("skipped rollback (current template already matches revision %d)", revision(target)), nil
	}
	annotations := map[string]string{}
	for k := range rollbackSkip {
		if v, ok := d.Annotations[k]; ok {
			annotations[k] = v
		}
	}
	for k, v := range target.Annotations {
		if !rollbackSkip[k] {
			annotations[k] = v
		}
	}
	patch, err := json.Marshal([]any{
		map[string]any{"op": "replace", "path": "/spec/template", "value": tmpl},
		map[string]any{"op": "replace", "path": "/metadata/annotations", "value": annotations},
	})
	return patch, "", err
}

func templatesEqual(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return apiequality.Semantic.DeepEqual(a, b)
}

// RolloutRestart sets the template's restartedAt annotation, which rolls every pod.
func (f *Factory) RolloutRestart(ctx context.Context, args []string, now time.Time) error {
	kube, d, err := f.getDeployment(ctx, args)
	if err != nil {
		return err
	}
	name := d.Name
	if d.Spec.Paused {
		return fmt.Errorf("deployment %q is paused: resume it before restarting", name)
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, restartedAtAnnotation, now.Format(time.RFC3339))
	if _, err := kube.AppsV1().Deployments(d.Namespace).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("restart deployment %q: %w", name, err)
	}
	fmt.Fprintf(f.Out, "deployment.apps/%s restarted\n", name)
	return nil
}
