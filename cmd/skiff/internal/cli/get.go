package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// GetOptions are get's flags.
type GetOptions struct {
	Output        string
	Selector      string
	FieldSelector string
	Watch         bool
	WatchOnly     bool
	NoHeaders     bool
}

// ParseTypeArgs splits kubectl's argument forms: "TYPE NAME...", "TYPE/NAME...", "TYPE1,TYPE2".
func ParseTypeArgs(args []string) (types []string, names map[string][]string, err error) {
	if len(args) == 0 {
		return nil, nil, errors.New("name a resource type, e.g. `skiff get pods` or `skiff get deploy/web`")
	}
	names = map[string][]string{}
	if strings.Contains(args[0], "/") {
		for _, a := range args {
			t, n, ok := strings.Cut(a, "/")
			if !ok || t == "" || n == "" {
				return nil, nil, fmt.Errorf("%q: use TYPE/NAME for every argument once one has that form", a)
			}
			if _, seen := names[t]; !seen {
				types = append(types, t)
			}
			names[t] = append(names[t], n)
		}
		return types, names, nil
	}
	types = strings.Split(args[0], ",")
	for _, t := range types {
		if t == "" {
			return nil, nil, fmt.Errorf("empty resource type in %q", args[0])
		}
		names[t] = append(names[t], args[1:]...)
	}
	if len(types) > 1 && len(args) > 1 {
		return nil, nil, errors.New("names need one resource type: use TYPE/NAME to name objects of several types")
	}
	return types, names, nil
}

// Get prints objects as a table or in a structured format, optionally watching for changes.
func (f *Factory) Get(ctx context.Context, args []string, o GetOptions) error {
	out, err := ParseOutput(o.Output)
	if err != nil {
		return err
	}
	typeArgs, names, err := ParseTypeArgs(args)
	if err != nil {
		return err
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	var all []*unstructured.Unstructured
	var notFound []string
	single := false
	for i, ta := range typeArgs {
		res, err := f.ResolveResource(ta)
		if err != nil {
			return err
		}
		ns := f.Namespace()
		if f.Globals.AllNamespaces {
			ns = ""
		}
		ri := resourceClient(dyn, res, ns)
		var objs []*unstructured.Unstructured
		var listRV string
		if ns := names[ta]; len(ns) > 0 {
			single = len(typeArgs) == 1 && len(ns) == 1
			if f.Globals.AllNamespaces && res.Namespaced {
				return errors.New("a name needs a namespace: use -n NAMESPACE instead of -A")
			}
			for _, n := range ns {
				obj, err := ri.Get(ctx, n, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					notFound = append(notFound, fmt.Sprintf("%s %q not found", res.GVR.GroupResource(), n))
					continue
				}
				if err != nil {
					return err
				}
				objs = append(objs, obj)
			}
		} else {
			list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: o.Selector, FieldSelector: o.FieldSelector})
			if err != nil {
				return err
			}
			listRV = list.GetResourceVersion()
			for i := range list.Items {
				objs = append(objs, &list.Items[i])
			}
			sort.SliceStable(objs, func(a, b int) bool {
				if objs[a].GetNamespace() != objs[b].GetNamespace() {
					return objs[a].GetNamespace() < objs[b].GetNamespace()
				}
				return objs[a].GetName() < objs[b].GetName()
			})
		}
		for _, obj := range objs {
			if obj.GetKind() == "" {
				obj.SetGroupVersionKind(res.GVK)
			}
		}
		if o.Watch || o.WatchOnly {
			if len(typeArgs) > 1 {
				return errors.New("watch needs exactly one resource type")
			}
			return f.watch(ctx, ri, res, objs, names[ta], listRV, out, o)
		}
		if out.Kind == "" || out.Kind == "wide" {
			if len(objs) == 0 {
				continue
			}
			if i > 0 && len(all) > 0 {
				fmt.Fprintln(f.Out)
			}
			p := &TablePrinter{Wide: out.Kind == "wide", WithNamespace: f.Globals.AllNamespaces && res.Namespaced, NoHeaders: o.NoHeaders}
			if err := p.Print(f.Out, res.GVK.GroupKind(), objs); err != nil {
				return err
			}
		}
		all = append(all, objs...)
	}
	if out.Kind != "" && out.Kind != "wide" {
		if err := printStructured(f.Out, out, all, single && len(notFound) == 0); err != nil {
			return err
		}
	} else if len(all) == 0 && len(notFound) == 0 {
		if f.Globals.AllNamespaces {
			fmt.Fprintln(f.ErrOut, "No resources found")
		} else {
			fmt.Fprintf(f.ErrOut, "No resources found in %s namespace.\n", f.Namespace())
		}
	}
	if len(notFound) > 0 {
		for _, nf := range notFound {
			fmt.Fprintln(f.ErrOut, "error:", nf)
		}
		return ErrSilent{Code: 1}
	}
	return nil
}

func (f *Factory) watch(ctx context.Context, ri dynamic.ResourceInterface, res Resource, initial []*unstructured.Unstructured, names []string, rv string, out OutputFormat, o GetOptions) error {
	p := &TablePrinter{Wide: out.Kind == "wide", WithNamespace: f.Globals.AllNamespaces && res.Namespaced, NoHeaders: o.NoHeaders}
	emit := func(objs []*unstructured.Unstructured) error {
		if len(objs) == 0 {
			return nil
		}
		if out.Kind == "" || out.Kind == "wide" {
			return p.Print(f.Out, res.GVK.GroupKind(), objs)
		}
		for _, obj := range objs {
			if err := printStructured(f.Out, out, []*unstructured.Unstructured{obj}, true); err != nil {
				return err
			}
			if out.Kind == "yaml" {
				fmt.Fprintln(f.Out, "---")
			}
		}
		return nil
	}
	if !o.WatchOnly {
		if err := emit(initial); err != nil {
			return err
		}
	}
	if rv == "" {
		// Resource versions are etcd revisions: resume after the newest object listed.
		var newest uint64
		for _, obj := range initial {
			if n, err := strconv.ParseUint(obj.GetResourceVersion(), 10, 64); err == nil && n > newest {
				newest = n
				rv = obj.GetResourceVersion()
			}
		}
	}
	fs := o.FieldSelector
	if len(names) == 1 {
		fs = "metadata.name=" + names[0]
	}
	for {
		w, err := ri.Watch(ctx, metav1.ListOptions{LabelSelector: o.Selector, FieldSelector: fs, ResourceVersion: rv, AllowWatchBookmarks: true})
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			list, lerr := ri.List(ctx, metav1.ListOptions{LabelSelector: o.Selector, FieldSelector: fs})
			if lerr != nil {
				return lerr
			}
			rv = list.GetResourceVersion()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	events:
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Error:
				w.Stop()
				if ctx.Err() != nil {
					return nil // Ctrl-C
				}
				werr := apierrors.FromObject(ev.Object)
				if !apierrors.IsResourceExpired(werr) && !apierrors.IsGone(werr) {
					return fmt.Errorf("watch: %v", werr)
				}
				// Our version was compacted away: start again from a fresh list.
				list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: o.Selector, FieldSelector: fs})
				if err != nil {
					return err
				}
				rv = list.GetResourceVersion()
				break events
			case watch.Bookmark:
				if u, ok := ev.Object.(*unstructured.Unstructured); ok {
					rv = u.GetResourceVersion()
				}
				continue
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			rv = u.GetResourceVersion()
			if len(names) > 1 && !slices.Contains(names, u.GetName()) {
				continue
			}
			if u.GetKind() == "" {
				u.SetGroupVersionKind(res.GVK)
			}
			if err := emit([]*unstructured.Unstructured{u}); err != nil {
				w.Stop()
				return err
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return nil
		}
		// The server closed the watch (timeout): resume from the last version seen.
	}
}
