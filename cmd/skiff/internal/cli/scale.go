package cli

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Scale sets replicas through the scale subresource (deployments, replicasets, RCs).
func (f *Factory) Scale(ctx context.Context, args []string, replicas int, currentReplicas int) error {
	if replicas < 0 {
		return errors.New("--replicas must be given and be 0 or more")
	}
	refs, err := f.resolveRefs(args)
	if err != nil {
		return err
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	for _, r := range refs {
		if ok, err := f.hasSubresource(r.res, "scale"); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%s cannot be scaled: %s have no scale subresource (deployments, replicasets and replicationcontrollers do)", r, r.res.GVR.Resource)
		}
		ri := resourceClient(dyn, r.res, r.ns)
		sc, err := ri.Get(ctx, r.name, metav1.GetOptions{}, "scale")
		if err != nil {
			return err
		}
		cur, _, _ := unstructured.NestedInt64(sc.Object, "spec", "replicas")
		if currentReplicas >= 0 && int(cur) != currentReplicas {
			return fmt.Errorf("%s has %d replicas, not the %d given by --current-replicas: nothing changed", r, cur, currentReplicas)
		}
		if err := unstructured.SetNestedField(sc.Object, int64(replicas), "spec", "replicas"); err != nil {
			return err
		}
		if _, err := ri.Update(ctx, sc, metav1.UpdateOptions{FieldManager: fieldManager}, "scale"); err != nil {
			return fmt.Errorf("scale %s: %w", r, err)
		}
		fmt.Fprintf(f.Out, "%s scaled\n", r)
	}
	return nil
}
