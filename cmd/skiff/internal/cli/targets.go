package cli

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// objectRef is one object named on the command line or in a manifest.
type objectRef struct {
	res  Resource
	ns   string
	name string
}

func (r objectRef) String() string { return ObjectName(r.res.GVK.GroupKind(), r.name) }

// resolveRefs turns "TYPE NAME..." or "TYPE/NAME..." into object references.
func (f *Factory) resolveRefs(args []string) ([]objectRef, error) {
	types, names, err := ParseTypeArgs(args)
	if err != nil {
		return nil, err
	}
	var refs []objectRef
	for _, t := range types {
		res, err := f.ResolveResource(t)
		if err != nil {
			return nil, err
		}
		if len(names[t]) == 0 {
			return nil, fmt.Errorf("name the %s: `TYPE NAME` or `TYPE/NAME`", res.GVR.Resource)
		}
		for _, n := range names[t] {
			refs = append(refs, f.ref(res, n))
		}
	}
	return refs, nil
}

func (f *Factory) ref(res Resource, name string) objectRef {
	r := objectRef{res: res, name: name}
	if res.Namespaced {
		r.ns = f.Namespace()
	}
	return r
}

// selectRefs lists the objects of the types ("cm" or "cm,secret") matching a label selector;
// an empty selector matches everything.
func (f *Factory) selectRefs(ctx context.Context, typeArg, selector string) ([]objectRef, error) {
	dyn, err := f.Dynamic()
	if err != nil {
		return nil, err
	}
	ns := f.Namespace()
	if f.Globals.AllNamespaces {
		ns = ""
	}
	var refs []objectRef
	for _, t := range strings.Split(typeArg, ",") {
		if strings.Contains(t, "/") {
			return nil, fmt.Errorf("%q: a selector goes with a type, not TYPE/NAME", t)
		}
		res, err := f.ResolveResource(t)
		if err != nil {
			return nil, err
		}
		list, err := resourceClient(dyn, res, ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, err
		}
		for _, it := range list.Items {
			refs = append(refs, objectRef{res: res, ns: it.GetNamespace(), name: it.GetName()})
		}
	}
	return refs, nil
}

// manifestRefs resolves the objects named by manifests.
func (f *Factory) manifestRefs(files []string, recursive bool) ([]objectRef, error) {
	docs, err := ReadManifests(files, recursive, f.In)
	if err != nil {
		return nil, err
	}
	var refs []objectRef
	for _, d := range docs {
		t, err := f.target(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Where(), err)
		}
		refs = append(refs, objectRef{res: t.res, ns: t.ns, name: d.Obj.GetName()})
	}
	return refs, nil
}
