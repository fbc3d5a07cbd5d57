package apiserver

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
)

// Version is what /version reports; GitVersion follows the Kubernetes API level served.
var Version = version.Info{Major: "1", Minor: "37", GitVersion: "v1.37.2-skiff", Platform: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version()}

func versionInfo() version.Info { return Version }

type groupInfo struct {
	group, version string
	list           *metav1.APIResourceList
}

var allVerbs = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func buildGroups(rs []*resource) []groupInfo {
	var out []groupInfo
	idx := map[string]int{}
	for _, r := range rs {
		gv := r.gvr.GroupVersion().String()
		i, ok := idx[gv]
		if !ok {
			i = len(out)
			idx[gv] = i
			out = append(out, groupInfo{group: r.gvr.Group, version: r.gvr.Version, list: &metav1.APIResourceList{
				TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}})
		}
		l := out[i].list
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: r.gvr.Resource, SingularName: r.singular,
			Namespaced: r.namespaced, Kind: r.kind, Verbs: allVerbs, ShortNames: r.shortNames})
		for _, sub := range r.subresources {
			ar := metav1.APIResource{Name: r.gvr.Resource + "/" + sub, Namespaced: r.namespaced, Kind: r.kind}
			switch sub {
			case "status":
				ar.Verbs = metav1.Verbs{"get", "patch", "update"}
			case "scale":
				ar.Verbs, ar.Kind, ar.Group, ar.Version = metav1.Verbs{"get", "patch", "update"}, "Scale", "autoscaling", "v1"
			case "binding":
				ar.Verbs, ar.Kind = metav1.Verbs{"create"}, "Binding"
			case "log":
				ar.Verbs = metav1.Verbs{"get"}
			case "exec":
				ar.Verbs, ar.Kind = metav1.Verbs{"create", "get"}, "PodExecOptions"
			case "finalize":
				ar.Verbs = metav1.Verbs{"update"}
			}
			l.APIResources = append(l.APIResources, ar)
		}
	}
	return out
}

// discovery answers /api, /apis and the group and version documents. It reports whether the
// path was a discovery path.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if r.Method != http.MethodGet && r.Method != http.MethodHead && s.isDiscoveryPath(p) {
		writeError(w, methodNotAllowed(r.Method, p), groupResource(""), "")
		return true
	}
	switch {
	case p == "/api":
		writeJSON(w, http.StatusOK, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
		return true
	case p == "/apis":
		gl := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
		for _, g := range s.groups {
			if g.group != "" {
				gl.Groups = append(gl.Groups, apiGroup(g))
			}
		}
		writeJSON(w, http.StatusOK, gl)
		return true
	}
	for _, g := range s.groups {
		base := "/apis/" + g.group
		if g.group == "" {
			base = "/api"
		} else if p == base {
			ag := apiGroup(g)
			ag.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
			writeJSON(w, http.StatusOK, &ag)
			return true
		}
		if p == base+"/"+g.version {
			writeJSON(w, http.StatusOK, g.list)
			return true
		}
	}
	return false
}

func (s *Server) isDiscoveryPath(p string) bool {
	if p == "/api" || p == "/apis" {
		return true
	}
	for _, g := range s.groups {
		if g.group == "" && p == "/api/"+g.version {
			return true
		}
		if g.group != "" && (p == "/apis/"+g.group || p == "/apis/"+g.group+"/"+g.version) {
			return true
		}
	}
	return false
}

func apiGroup(g groupInfo) metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: g.group + "/" + g.version, Version: g.version}
	return metav1.APIGroup{Name: g.group, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
}

func fmtAny(v any) string { return fmt.Sprint(v) }
