package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// LabelChange is a parsed "key=value" or "key-".
type LabelChange struct {
	Key    string
	Value  string
	Remove bool
}

// ParseLabelArgs splits label's arguments into object arguments and label changes.
func ParseLabelArgs(args []string) (objs []string, changes []LabelChange, err error) {
	for _, a := range args {
		switch {
		case strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				return nil, nil, fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				return nil, nil, fmt.Errorf("label value %q of %s: %s", v, k, strings.Join(errs, "; "))
			}
			changes = append(changes, LabelChange{Key: k, Value: v})
		case strings.HasSuffix(a, "-") && len(objs) > 0 && !strings.Contains(a, "/"):
			k := strings.TrimSuffix(a, "-")
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				return nil, nil, fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
			}
			changes = append(changes, LabelChange{Key: k, Remove: true})
		default:
			if len(changes) > 0 {
				return nil, nil, fmt.Errorf("%q: put the objects before the labels: skiff label TYPE NAME key=value key-", a)
			}
			objs = append(objs, a)
		}
	}
	if len(changes) == 0 {
		return nil, nil, errors.New("no label changes: give key=value to set or key- to remove")
	}
	return objs, changes, nil
}

// Label sets or removes labels. An existing different value needs overwrite.
func (f *Factory) Label(ctx context.Context, args []string, overwrite bool, selector string) error {
	objArgs, changes, err := ParseLabelArgs(args)
	if err != nil {
		return err
	}
	var refs []objectRef
	if selector != "" {
		if len(objArgs) != 1 {
			return errors.New("-l SELECTOR needs exactly one resource type: skiff label TYPE -l SEL key=value")
		}
		refs, err = f.selectRefs(ctx, objArgs[0], selector)
	} else {
		refs, err = f.resolveRefs(objArgs)
	}
	if err != nil {
		return err
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	for _, r := range refs {
		ri := resourceClient(dyn, r.res, r.ns)
		obj, err := ri.Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur := obj.GetLabels()
		patch := map[string]any{}
		for _, c := range changes {
			old, has := cur[c.Key]
			switch {
			case c.Remove && has:
				patch[c.Key] = nil
			case c.Remove:
			case has && old != c.Value && !overwrite:
				return fmt.Errorf("%s: label %q already has the value %q: pass --overwrite to replace it", r, c.Key, old)
			case !has || old != c.Value:
				patch[c.Key] = c.Value
			}
		}
		if len(patch) == 0 {
			fmt.Fprintf(f.Out, "%s not labeled\n", r)
			continue
		}
		body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": patch, "resourceVersion": obj.GetResourceVersion()}})
		if err != nil {
			return err
		}
		if _, err := ri.Patch(ctx, r.name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("label %s: %w", r, err)
		}
		verb := "labeled"
		if allRemovals(patch) {
			verb = "unlabeled"
		}
		fmt.Fprintf(f.Out, "%s %s\n", r, verb)
	}
	return nil
}

func allRemovals(p map[string]any) bool {
	for _, v := range p {
		if v != nil {
			return false
		}
	}
	return true
}
