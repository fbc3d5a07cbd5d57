package cli

import (
	"context"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// completionTypes are offered for the TYPE argument.
var completionTypes = []string{
	"configmaps", "deployments", "endpoints", "endpointslices", "events", "leases", "namespaces",
	"nodes", "pods", "replicasets", "replicationcontrollers", "secrets", "serviceaccounts", "services",
}

// Complete suggests a resource type for the first argument and object names for the next ones.
// Errors (no server, no config) just mean no suggestions.
func (f *Factory) Complete(args []string, toComplete string) []string {
	if len(args) == 0 {
		var out []string
		for _, t := range completionTypes {
			if strings.HasPrefix(t, toComplete) {
				out = append(out, t)
			}
		}
		return out
	}
	if strings.Contains(args[0], "/") {
		return nil
	}
	res, err := f.ResolveResource(args[0])
	if err != nil {
		return nil
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	list, err := resourceClient(dyn, res, f.Namespace()).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, it := range list.Items {
		if strings.HasPrefix(it.GetName(), toComplete) {
			out = append(out, it.GetName())
		}
	}
	sort.Strings(out)
	return out
}
