// Package apiserver serves the Kubernetes REST API over skiff's storage: one generic handler
// driven by the resource table in resources.go, plus discovery, watch, subresources,
// authentication and authorization, node join, and logs/exec proxying to the node agents.
package apiserver

import (
	"context"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffnet/skiff/controlplane/pki"
	"github.com/skiffnet/skiff/controlplane/registry"
	"github.com/skiffnet/skiff/controlplane/storage"
)

// Options configure the API handler.
type Options struct {
	Storage    storage.Interface
	Allocator  *registry.Allocator
	NodeTokens *NodeTokens
	CA         *pki.CA
	AdminToken string
	JoinToken  string
	// Ready reports whether the server finished its start-up work (for /readyz).
	Ready func() bool
}

// Server is the API's http.Handler.
type Server struct {
	opts       Options
	store      storage.Interface
	alloc      *registry.Allocator
	nodeTokens *NodeTokens
	byPath     map[string]*resource // "group/version/resource" ("/v1/pods" for core)
	groups     []groupInfo
	metrics    *metrics
	ns         *nsCache
	agentLazy
}

// New builds the handler.
func New(opts Options) *Server {
	s := &Server{opts: opts, alloc: opts.Allocator, nodeTokens: opts.NodeTokens,
		byPath: map[string]*resource{}, metrics: newMetrics(), ns: newNSCache()}
	s.store = &observingStore{Interface: opts.Storage, ns: s.ns}
	for _, r := range resources() {
		s.byPath[r.gvr.Group+"/"+r.gvr.Version+"/"+r.gvr.Resource] = r
	}
	s.groups = buildGroups(resources())
	return s
}

// Start runs the server's caches until ctx ends. Without it every request reads etcd.
func (s *Server) Start(ctx context.Context) {
	go s.ns.run(ctx, s.opts.Storage)
}

// reqInfo is what the URL says.
type reqInfo struct {
	verb      string // get list watch create update patch delete deletecollection
	res       *resource
	namespace string
	name      string
	sub       string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, nil)
}

// InsecureHandler serves every request as the admin user (the --insecure-listen port).
func (s *Server) InsecureHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, Admin) })
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, fixed *User) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, code: http.StatusOK, protobuf: wantsProtobuf(r.Header.Get("Accept"))}
	label := requestLabel{verb: r.Method, resource: "", sub: ""}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			writeError(rec, apierrors.NewInternalError(panicError{p}), schema.GroupResource{}, "")
			rec.code = http.StatusInternalServerError
		}
		s.metrics.observe(label, rec.code, time.Since(start))
	}()
	s.route(rec, r, fixed, &label)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, fixed *User, label *requestLabel) {
	p := r.URL.Path
	switch p {
	case "/healthz", "/livez":
		writeText(w, http.StatusOK, "ok")
		return
	case "/readyz":
		if s.opts.Ready != nil && !s.opts.Ready() {
			writeText(w, http.StatusServiceUnavailable, "not ready: the server is starting")
			return
		}
		writeText(w, http.StatusOK, "ok")
		return
	case "/version":
		writeJSON(w, http.StatusOK, versionInfo())
		return
	case "/skiff/v1/join":
		label.resource = "join"
		s.join(w, r)
		return
	}
	u := fixed
	if u == nil {
		var ok bool
		if u, ok = s.authenticate(r); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="skiff"`)
			writeStatus(w, status(apierrors.NewUnauthorized("Unauthorized: send a valid bearer token (see the kubeconfig in the server's data dir)")))
			return
		}
	}
	r = r.WithContext(withUser(r.Context(), u))
	if p == "/metrics" {
		label.resource = "metrics"
		s.metrics.handler().ServeHTTP(w, r)
		return
	}
	if s.discovery(w, r) {
		label.resource = "discovery"
		return
	}
	ri, err := s.parse(r)
	if err != nil {
		writeError(w, err, schema.GroupResource{}, "")
		return
	}
	label.verb, label.resource, label.sub = strings.ToUpper(ri.verb), ri.res.gvr.Resource, ri.sub
	if err := s.authorize(u, ri); err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	s.dispatch(w, r, ri)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(msg))
}

// parse splits /api/v1/[watch/][namespaces/NS/]RESOURCE[/NAME[/SUB]] and the /apis/G/V form.
func (s *Server) parse(r *http.Request) (*reqInfo, error) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var group, version string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		version, parts = parts[1], parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, version, parts = parts[1], parts[2], parts[3:]
	default:
		return nil, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path)
	}
	legacyWatch := false
	if parts[0] == "watch" {
		legacyWatch, parts = true, parts[1:]
	}
	ri := &reqInfo{}
	if len(parts) >= 3 && parts[0] == "namespaces" && parts[2] != "status" && parts[2] != "finalize" {
		ri.namespace = parts[1]
		if parts[1] == "" {
			return nil, badRequest("empty namespace in %s", r.URL.Path)
		}
		parts = parts[2:]
	}
	if len(parts) == 0 || len(parts) > 3 {
		return nil, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path)
	}
	res := s.byPath[group+"/"+version+"/"+parts[0]]
	if res == nil {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: group, Resource: parts[0]}, "")
	}
	ri.res = res
	if len(parts) >= 2 {
		ri.name = parts[1]
	}
	if len(parts) == 3 {
		ri.sub = parts[2]
	}
	if ri.sub != "" && !res.hasSub(ri.sub) {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: group, Resource: res.gvr.Resource + "/" + ri.sub}, ri.name)
	}
	if !res.namespaced && ri.namespace != "" {
		return nil, apierrors.NewNotFound(res.gr(), ri.name)
	}
	q := r.URL.Query()
	collection := ri.name == ""
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case legacyWatch || (collection && isTrue(q.Get("watch"))):
			ri.verb = "watch"
		case collection:
			ri.verb = "list"
		default:
			ri.verb = "get"
		}
	case http.MethodPost:
		if collection || ri.sub == "binding" || ri.sub == "exec" {
			ri.verb = "create"
		}
	case http.MethodPut:
		if !collection {
			ri.verb = "update"
		}
	case http.MethodPatch:
		if !collection {
			ri.verb = "patch"
		}
	case http.MethodDelete:
		if collection {
			ri.verb = "deletecollection"
		} else if ri.sub == "" {
			ri.verb = "delete"
		}
	}
	if ri.verb == "" {
		return nil, methodNotAllowed(r.Method, r.URL.Path)
	}
	if legacyWatch && collection == false && ri.name != "" {
		// /api/v1/watch/namespaces/NS/pods/NAME: a watch of one object.
		ri.verb = "watch"
	}
	return ri, nil
}

func isTrue(s string) bool { return s == "true" || s == "1" }

type panicError struct{ v any }

func (p panicError) Error() string { return "panic: " + strings.TrimSpace(fmtAny(p.v)) }

// Storage gives the handler's storage (for the server's start-up work).
func (s *Server) Storage() storage.Interface { return s.store }

// bgCtx bounds work that must finish even when the client went away (releases).
func bgCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}
