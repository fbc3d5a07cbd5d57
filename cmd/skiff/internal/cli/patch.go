package cli

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/jsonmergepatch"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/scheme"
)

// LastAppliedAnnotation is where apply remembers the configuration it last applied.
const LastAppliedAnnotation = corev1.LastAppliedConfigAnnotation

// ModifiedConfig returns the object as apply sends it: the user's configuration with the
// last-applied annotation set to that same configuration (without the annotation), encoded the
// way kubectl encodes it, so skiff and kubectl can take turns applying one object.
func ModifiedConfig(obj *unstructured.Unstructured) ([]byte, error) {
	o := obj.DeepCopy()
	annots := o.GetAnnotations()
	if annots == nil {
		annots = map[string]string{}
	}
	delete(annots, LastAppliedAnnotation)
	o.SetAnnotations(annots)
	cfg, err := runtime.Encode(unstructured.UnstructuredJSONScheme, o)
	if err != nil {
		return nil, fmt.Errorf("encode configuration: %w", err)
	}
	annots[LastAppliedAnnotation] = string(cfg)
	o.SetAnnotations(annots)
	modified, err := runtime.Encode(unstructured.UnstructuredJSONScheme, o)
	if err != nil {
		return nil, fmt.Errorf("encode configuration: %w", err)
	}
	return modified, nil
}

// ApplyPatch computes kubectl apply's three-way patch from the last-applied configuration stored
// on live, the desired object and live itself: a strategic merge patch for the built-in types
// (using their struct's patch strategy, e.g. containers merge by name), a JSON merge patch for
// types the scheme does not know. A patch of "{}" means unchanged.
func ApplyPatch(desired, live *unstructured.Unstructured) ([]byte, types.PatchType, error) {
	modified, err := ModifiedConfig(desired)
	if err != nil {
		return nil, "", err
	}
	original := []byte(live.GetAnnotations()[LastAppliedAnnotation])
	current, err := runtime.Encode(unstructured.UnstructuredJSONScheme, live)
	if err != nil {
		return nil, "", fmt.Errorf("encode live object: %w", err)
	}
	versioned, err := scheme.Scheme.New(desired.GroupVersionKind())
	switch {
	case err == nil:
		meta, err := strategicpatch.NewPatchMetaFromStruct(versioned)
		if err != nil {
			return nil, "", fmt.Errorf("patch metadata of %s: %w", desired.GroupVersionKind(), err)
		}
		patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, meta, true)
		if err != nil {
			return nil, "", fmt.Errorf("compute strategic merge patch: %w", err)
		}
		return patch, types.StrategicMergePatchType, nil
	case runtime.IsNotRegisteredError(err):
		patch, err := jsonmergepatch.CreateThreeWayJSONMergePatch(original, modified, current,
			mergepatch.RequireKeyUnchanged("apiVersion"),
			mergepatch.RequireKeyUnchanged("kind"),
			mergepatch.RequireMetadataKeyUnchanged("name"))
		if err != nil {
			if mergepatch.IsPreconditionFailed(err) {
				return nil, "", fmt.Errorf("apiVersion, kind and metadata.name cannot be changed by apply: %w", err)
			}
			return nil, "", fmt.Errorf("compute JSON merge patch: %w", err)
		}
		return patch, types.MergePatchType, nil
	default:
		return nil, "", fmt.Errorf("look up %s: %w", desired.GroupVersionKind(), err)
	}
}
