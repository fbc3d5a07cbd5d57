package storage

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Empty reports whether p selects every object.
func (p Predicate) Empty() bool {
	return (p.Label == nil || p.Label.Empty()) && (p.Field == nil || p.Field.Empty())
}

// Matches reports whether obj is selected by p. Without GetAttrs, the fields are
// metadata.name and metadata.namespace (what every resource supports).
func (p Predicate) Matches(obj runtime.Object) (bool, error) {
	if p.Empty() {
		return true, nil
	}
	getAttrs := p.GetAttrs
	if getAttrs == nil {
		getAttrs = DefaultAttrs
	}
	ls, fs, err := getAttrs(obj)
	if err != nil {
		return false, err
	}
	if p.Label != nil && !p.Label.Empty() && !p.Label.Matches(ls) {
		return false, nil
	}
	if p.Field != nil && !p.Field.Empty() && !p.Field.Matches(fs) {
		return false, nil
	}
	return true, nil
}

// DefaultAttrs gives an object's labels and its metadata.name and metadata.namespace fields.
func DefaultAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("object %T has no metadata: %w", obj, err)
	}
	return labels.Set(m.GetLabels()), fields.Set{
		"metadata.name":      m.GetName(),
		"metadata.namespace": m.GetNamespace(),
	}, nil
}
