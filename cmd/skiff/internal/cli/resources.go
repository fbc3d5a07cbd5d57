package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// builtinAliases are kubectl's short names, used when the server's discovery does not list them.
var builtinAliases = map[string]schema.GroupResource{
	"po":     {Resource: "pods"},
	"svc":    {Resource: "services"},
	"deploy": {Group: "apps", Resource: "deployments"},
	"rs":     {Group: "apps", Resource: "replicasets"},
	"rc":     {Resource: "replicationcontrollers"},
	"ns":     {Resource: "namespaces"},
	"no":     {Resource: "nodes"},
	"cm":     {Resource: "configmaps"},
	"ep":     {Resource: "endpoints"},
	"ev":     {Resource: "events"},
	"sa":     {Resource: "serviceaccounts"},
	"ds":     {Group: "apps", Resource: "daemonsets"},
	"sts":    {Group: "apps", Resource: "statefulsets"},
	"eps":    {Group: "discovery.k8s.io", Resource: "endpointslices"},
}

// Resource is a resolved resource type.
type Resource struct {
	GVR        schema.GroupVersionResource
	GVK        schema.GroupVersionKind
	Namespaced bool
}

// String is kubectl's "kind.group" prefix of object names, e.g. deployment.apps.
func (r Resource) String() string { return kindGroup(r.GVK.GroupKind()) }

func kindGroup(gk schema.GroupKind) string {
	if gk.Group == "" {
		return strings.ToLower(gk.Kind)
	}
	return strings.ToLower(gk.Kind) + "." + gk.Group
}

// ObjectName is kubectl's "deployment.apps/web".
func ObjectName(gk schema.GroupKind, name string) string { return kindGroup(gk) + "/" + name }

// ResolveResource turns "po", "pods", "pod", "deployments.apps", "deploy" into a Resource, or an
// error with a "did you mean" suggestion.
func (f *Factory) ResolveResource(arg string) (Resource, error) {
	mapper, err := f.Mapper()
	if err != nil {
		return Resource{}, err
	}
	arg = strings.ToLower(strings.TrimSpace(arg))
	if arg == "" {
		return Resource{}, errors.New("no resource type given: name one, e.g. pods, services, deployments")
	}
	var gvr schema.GroupVersionResource
	if a, ok := builtinAliases[arg]; ok {
		gvr = a.WithVersion("")
	} else {
		fq, gr := schema.ParseResourceArg(arg)
		if fq != nil {
			gvr = *fq
		} else {
			gvr = gr.WithVersion("")
		}
	}
	full, err := mapper.ResourceFor(gvr)
	if err != nil && gvr.Group == "" && strings.Contains(arg, ".") {
		// "deployments.apps" parses as group "apps" above; a dotted core name does not exist.
		full, err = mapper.ResourceFor(schema.GroupVersionResource{Resource: arg})
	}
	if err != nil {
		if meta.IsNoMatchError(err) {
			return Resource{}, f.unknownType(arg)
		}
		return Resource{}, err // unreachable server, bad credentials: Explain words them
	}
	gvk, err := mapper.KindFor(full)
	if err != nil {
		return Resource{}, fmt.Errorf("resolve kind of %s: %w", full, err)
	}
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return Resource{}, fmt.Errorf("resolve %s: %w", gvk, err)
	}
	return Resource{GVR: m.Resource, GVK: gvk, Namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

// ResolveKind maps a manifest's apiVersion/kind to its resource.
func (f *Factory) ResolveKind(gvk schema.GroupVersionKind) (Resource, error) {
	mapper, err := f.Mapper()
	if err != nil {
		return Resource{}, err
	}
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			msg := fmt.Sprintf("the server has no resource type for kind %q in %q", gvk.Kind, gvk.GroupVersion().String())
			if s := f.suggestKind(gvk.Kind); s != "" {
				msg += fmt.Sprintf(": did you mean %q?", s)
			}
			return Resource{}, errors.New(msg)
		}
		return Resource{}, fmt.Errorf("resolve kind %s: %w", gvk, err)
	}
	return Resource{GVR: m.Resource, GVK: m.GroupVersionKind, Namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

// knownNames lists every name the server's discovery and the built-in aliases accept.
func (f *Factory) knownNames() (names []string, kinds []string) {
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for a := range builtinAliases {
		add(a)
	}
	if f.disco != nil {
		_, lists, _ := f.disco.ServerGroupsAndResources()
		for _, l := range lists {
			for _, r := range l.APIResources {
				if strings.Contains(r.Name, "/") {
					continue
				}
				add(r.Name)
				add(r.SingularName)
				add(strings.ToLower(r.Kind))
				for _, s := range r.ShortNames {
					add(s)
				}
				kinds = append(kinds, r.Kind)
			}
		}
	}
	sort.Strings(names)
	return names, kinds
}

func (f *Factory) unknownType(arg string) error {
	names, _ := f.knownNames()
	msg := fmt.Sprintf("unknown resource type %q", arg)
	if s := closest(arg, names); s != "" {
		msg += fmt.Sprintf(": did you mean %q?", s)
	}
	return errors.New(msg + "")
}

func (f *Factory) suggestKind(kind string) string {
	_, kinds := f.knownNames()
	return closest(kind, kinds)
}

// closest returns the candidate nearest to s by edit distance, if it is near enough to be a typo.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := len(s)/2 + 1
	if limit > 3 {
		limit = 3
	}
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the optimal-string-alignment distance: Levenshtein plus adjacent
// transpositions, the commonest typo ("pdos").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// hasSubresource asks discovery whether res serves sub (e.g. "scale").
func (f *Factory) hasSubresource(res Resource, sub string) (bool, error) {
	d, err := f.Discovery()
	if err != nil {
		return false, err
	}
	list, err := d.ServerResourcesForGroupVersion(res.GVR.GroupVersion().String())
	if err != nil {
		return false, err
	}
	for _, r := range list.APIResources {
		if r.Name == res.GVR.Resource+"/"+sub {
			return true, nil
		}
	}
	return false, nil
}
