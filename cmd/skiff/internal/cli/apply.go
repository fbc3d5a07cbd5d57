package cli

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
)

// ApplyOptions are apply's and create's flags.
type ApplyOptions struct {
	Files           []string
	Recursive       bool
	DryRunServer    bool
	ContinueOnError bool
	CreateOnly      bool // skiff create: fail on existing objects, no last-applied annotation
}

const fieldManager = "skiff"

// Result of applying one document.
type applyResult string

const (
	resCreated    applyResult = "created"
	resConfigured applyResult = "configured"
	resUnchanged  applyResult = "unchanged"
)

// Apply creates or updates every object of the manifests. Unless ContinueOnError, every
// document is first checked with a server dry-run, so a bad file changes nothing.
func (f *Factory) Apply(ctx context.Context, o ApplyOptions) error {
	docs, err := ReadManifests(o.Files, o.Recursive, f.In)
	if err != nil {
		return err
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	targets := make([]applyTarget, len(docs))
	var bad []string
	for i, d := range docs {
		t, err := f.target(d)
		if err != nil {
			bad = append(bad, f.docError(d, err))
		}
		targets[i] = t
	}
	if len(bad) == 0 && !o.ContinueOnError && !o.DryRunServer {
		// Namespaces the manifests create cannot hold dry-run objects yet: skip those checks.
		newNS := map[string]bool{}
		for _, t := range targets {
			if t.res.GVK.Kind == "Namespace" && t.res.GVK.Group == "" {
				newNS[t.doc.Obj.GetName()] = true
			}
		}
		for _, t := range targets {
			_, err := f.applyOne(ctx, dyn, t, o, true)
			if err != nil && apierrors.IsNotFound(err) && newNS[t.ns] {
				continue
			}
			if err != nil {
				bad = append(bad, f.docError(t.doc, err))
			}
		}
	}
	if len(bad) > 0 && !o.ContinueOnError {
		for _, b := range bad {
			fmt.Fprintln(f.ErrOut, "error:", b)
		}
		return fmt.Errorf("%d of %d objects are invalid; nothing was changed (fix them, or pass --continue-on-error to apply the rest)", len(bad), len(docs))
	}
	failed := len(bad)
	for _, b := range bad {
		fmt.Fprintln(f.ErrOut, "error:", b)
	}
	for _, t := range targets {
		if t.res.GVR.Resource == "" {
			continue // could not be resolved; reported above
		}
		res, err := f.applyOne(ctx, dyn, t, o, o.DryRunServer)
		if err != nil {
			failed++
			fmt.Fprintln(f.ErrOut, "error:", f.docError(t.doc, err))
			if !o.ContinueOnError {
				return ErrSilent{Code: 1}
			}
			continue
		}
		suffix := ""
		if o.DryRunServer {
			suffix = " (server dry run)"
		}
		fmt.Fprintf(f.Out, "%s %s%s\n", ObjectName(t.res.GVK.GroupKind(), t.doc.Obj.GetName()), res, suffix)
	}
	if failed > 0 {
		return ErrSilent{Code: 1}
	}
	return nil
}

type applyTarget struct {
	doc Document
	res Resource
	ns  string
}

func (f *Factory) docError(d Document, err error) string {
	name := d.Obj.GetName()
	what := d.Obj.GetKind()
	if name != "" {
		what += " " + name
	}
	return Explain(fmt.Errorf("%s: %s: %w", d.Where(), what, err), f.Host()).Error()
}

func (f *Factory) target(d Document) (applyTarget, error) {
	res, err := f.ResolveKind(d.Obj.GroupVersionKind())
	if err != nil {
		return applyTarget{doc: d}, err
	}
	t := applyTarget{doc: d, res: res}
	if !res.Namespaced {
		d.Obj.SetNamespace("")
		return t, nil
	}
	t.ns = d.Obj.GetNamespace()
	switch {
	case t.ns == "":
		t.ns = f.Namespace()
	case f.ExplicitNamespace() && t.ns != f.Namespace():
		return applyTarget{doc: d}, fmt.Errorf("the object's namespace %q does not match --namespace %q: pass --namespace=%s or remove metadata.namespace", t.ns, f.Namespace(), t.ns)
	}
	return t, nil
}

func (f *Factory) applyOne(ctx context.Context, dyn dynamic.Interface, t applyTarget, o ApplyOptions, dryRun bool) (applyResult, error) {
	var dr []string
	if dryRun {
		dr = []string{metav1.DryRunAll}
	}
	ri := resourceClient(dyn, t.res, t.ns)
	obj := t.doc.Obj.DeepCopy()
	if t.res.Namespaced {
		obj.SetNamespace(t.ns)
	}
	if o.CreateOnly {
		if _, err := ri.Create(ctx, obj, metav1.CreateOptions{DryRun: dr, FieldManager: fieldManager}); err != nil {
			return "", err
		}
		return resCreated, nil
	}
	for attempt := 0; ; attempt++ {
		live, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			modified, err := ModifiedConfig(obj)
			if err != nil {
				return "", err
			}
			toCreate := &unstructured.Unstructured{}
			if err := runtime.DecodeInto(unstructured.UnstructuredJSONScheme, modified, toCreate); err != nil {
				return "", fmt.Errorf("decode configuration: %w", err)
			}
			if _, err := ri.Create(ctx, toCreate, metav1.CreateOptions{DryRun: dr, FieldManager: fieldManager}); err != nil {
				if apierrors.IsAlreadyExists(err) && attempt < 3 {
					continue // raced with another writer: patch it instead
				}
				return "", err
			}
			return resCreated, nil
		}
		if err != nil {
			return "", fmt.Errorf("get current state: %w", err)
		}
		patch, pt, err := ApplyPatch(obj, live)
		if err != nil {
			return "", err
		}
		if string(patch) == "{}" {
			return resUnchanged, nil
		}
		_, err = ri.Patch(ctx, obj.GetName(), pt, patch, metav1.PatchOptions{DryRun: dr, FieldManager: fieldManager})
		if apierrors.IsConflict(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return "", err
		}
		return resConfigured, nil
	}
}

func resourceClient(dyn dynamic.Interface, r Resource, ns string) dynamic.ResourceInterface {
	if r.Namespaced {
		return dyn.Resource(r.GVR).Namespace(ns)
	}
	return dyn.Resource(r.GVR)
}
