package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// Describe prints a readable summary of each object and the events about it.
func (f *Factory) Describe(ctx context.Context, args []string, selector string) error {
	var refs []objectRef
	var err error
	if selector != "" || len(args) == 1 && !strings.Contains(args[0], "/") {
		if len(args) != 1 {
			return fmt.Errorf("-l needs exactly one resource type")
		}
		refs, err = f.selectRefs(ctx, args[0], selector)
	} else {
		refs, err = f.resolveRefs(args)
	}
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		fmt.Fprintln(f.ErrOut, "No resources found")
		return nil
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	kube, err := f.Kube()
	if err != nil {
		return err
	}
	for i, r := range refs {
		u, err := resourceClient(dyn, r.res, r.ns).Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(f.Out)
		}
		var events []corev1.Event
		evNS := u.GetNamespace()
		if evNS == "" {
			evNS = metav1.NamespaceDefault
		}
		// Ask the server to filter; the loop below also filters, for servers that cannot.
		fs := fields.Set{"involvedObject.name": u.GetName(), "involvedObject.kind": u.GetKind()}.String()
		list, err := kube.CoreV1().Events(evNS).List(ctx, metav1.ListOptions{FieldSelector: fs})
		if err != nil {
			list, err = kube.CoreV1().Events(evNS).List(ctx, metav1.ListOptions{})
		}
		if err == nil {
			for _, e := range list.Items {
				ref := e.InvolvedObject
				if ref.Name == u.GetName() && ref.Kind == u.GetKind() && (ref.UID == "" || ref.UID == u.GetUID()) {
					events = append(events, e)
				}
			}
		}
		if err := DescribeObject(f.Out, u, events, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// DescribeObject writes one object's description.
func DescribeObject(w io.Writer, u *unstructured.Unstructured, events []corev1.Event, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	kv("Name", u.GetName())
	if u.GetNamespace() != "" {
		kv("Namespace", u.GetNamespace())
	}
	kv("Labels", mapLines(u.GetLabels(), "\t"))
	annots := u.GetAnnotations()
	delete(annots, LastAppliedAnnotation)
	kv("Annotations", mapLines(annots, "\t"))
	if ts := u.GetCreationTimestamp(); !ts.IsZero() {
		kv("CreationTimestamp", ts.UTC().Format(time.RFC1123Z))
	}
	gk := u.GroupVersionKind().GroupKind()
	switch {
	case gk.Group == "" && gk.Kind == "Pod":
		var p corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
			return err
		}
		kv("Node", orNone(p.Spec.NodeName))
		kv("Status", podStatus(&p))
		kv("IP", orNone(p.Status.PodIP))
		for _, c := range p.Spec.Containers {
			fmt.Fprintf(tw, "Container %s:\t\n", c.Name)
			fmt.Fprintf(tw, "  Image:\t%s\n", c.Image)
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == c.Name {
					fmt.Fprintf(tw, "  Ready:\t%v\n", cs.Ready)
					fmt.Fprintf(tw, "  Restart Count:\t%d\n", cs.RestartCount)
				}
			}
		}
		conds := []string{}
		for _, c := range p.Status.Conditions {
			conds = append(conds, fmt.Sprintf("%s=%s", c.Type, c.Status))
		}
		kv("Conditions", orNone(strings.Join(conds, ", ")))
	case gk.Group == "" && gk.Kind == "Service":
		var s corev1.Service
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			return err
		}
		kv("Selector", selectorString(s.Spec.Selector))
		kv("Type", string(s.Spec.Type))
		kv("IP", orNone(s.Spec.ClusterIP))
		if s.Spec.ExternalName != "" {
			kv("External Name", s.Spec.ExternalName)
		}
		for _, p := range s.Spec.Ports {
			name := p.Name
			if name == "" {
				name = "<unset>"
			}
			kv("Port", fmt.Sprintf("%s  %d/%s", name, p.Port, p.Protocol))
			kv("TargetPort", p.TargetPort.String())
			if p.NodePort != 0 {
				kv("NodePort", fmt.Sprintf("%s  %d/%s", name, p.NodePort, p.Protocol))
			}
		}
		kv("Session Affinity", orNone(string(s.Spec.SessionAffinity)))
	case gk.Group == "apps" && gk.Kind == "Deployment":
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			return err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		kv("Selector", labelSelectorString(d.Spec.Selector))
		kv("Replicas", fmt.Sprintf("%d desired | %d updated | %d total | %d available | %d unavailable",
			want, d.Status.UpdatedReplicas, d.Status.Replicas, d.Status.AvailableReplicas, d.Status.UnavailableReplicas))
		kv("StrategyType", string(d.Spec.Strategy.Type))
		for _, c := range d.Spec.Template.Spec.Containers {
			fmt.Fprintf(tw, "Container %s:\t\n", c.Name)
			fmt.Fprintf(tw, "  Image:\t%s\n", c.Image)
			for _, p := range c.Ports {
				fmt.Fprintf(tw, "  Port:\t%d/%s\n", p.ContainerPort, p.Protocol)
			}
		}
		for _, c := range d.Status.Conditions {
			kv("Condition "+string(c.Type), fmt.Sprintf("%s (%s)", c.Status, c.Reason))
		}
	case gk.Group == "" && gk.Kind == "Secret":
		// Like kubectl: sizes only, never the values.
		var s corev1.Secret
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			return err
		}
		kv("Type", string(s.Type))
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(tw, "Data:\t")
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s:\t%d bytes\n", k, len(s.Data[k]))
		}
	default:
		if err := tw.Flush(); err != nil {
			return err
		}
		rest := map[string]any{}
		for k, v := range u.Object {
			if k != "metadata" && k != "apiVersion" && k != "kind" {
				rest[k] = v
			}
		}
		if len(rest) > 0 {
			b, err := yaml.Marshal(rest)
			if err != nil {
				return err
			}
			fmt.Fprint(w, string(b))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printEvents(w, events, now)
}

func mapLines(m map[string]string, sep string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lines []string
	for _, k := range keys {
		lines = append(lines, k+"="+m[k])
	}
	return strings.Join(lines, "\n"+sep)
}

const maxDescribeEvents = 20

func printEvents(w io.Writer, events []corev1.Event, now time.Time) error {
	if len(events) == 0 {
		_, err := fmt.Fprintln(w, "Events:  <none>")
		return err
	}
	sort.Slice(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	if len(events) > maxDescribeEvents {
		events = events[len(events)-maxDescribeEvents:] // the most recent ones
	}
	fmt.Fprintln(w, "Events:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  Type\tReason\tAge\tFrom\tMessage")
	fmt.Fprintln(tw, "  ----\t------\t----\t----\t-------")
	for _, e := range events {
		ago := "<unknown>"
		if t := eventTime(e); !t.IsZero() {
			ago = duration.HumanDuration(now.Sub(t))
		}
		if e.Count > 1 {
			ago = fmt.Sprintf("%s (x%d)", ago, e.Count)
		}
		from := e.Source.Component
		if from == "" {
			from = e.ReportingController
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.Type, e.Reason, ago, from, strings.TrimSpace(e.Message))
	}
	return tw.Flush()
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
