package apiserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffnet/skiff/controlplane/storage"
)

// User is an authenticated caller.
type User struct {
	Name   string
	Groups []string
}

// Node returns the node name of a node credential, "" otherwise.
func (u *User) Node() string {
	if n, ok := strings.CutPrefix(u.Name, "system:node:"); ok {
		return n
	}
	return ""
}

func (u *User) admin() bool {
	for _, g := range u.Groups {
		if g == "system:masters" {
			return true
		}
	}
	return false
}

// Admin is the user of the admin token and of the insecure loopback port.
var Admin = &User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}

type userKey struct{}

func withUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the user of a request context.
func UserFrom(ctx context.Context) *User { u, _ := ctx.Value(userKey{}).(*User); return u }

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// nodeTokensPrefix holds one Secret per node with its token. It is outside every served
// resource's prefix, so no API client can read it: only etcd access reveals node tokens. The
// API server needs the token itself (not a hash) to call the node's agent for logs and exec.
const nodeTokensPrefix = "/registry/skiff-node-tokens/"

// NodeTokens maps node tokens to node names, backed by etcd so restarts and other API
// servers see the same tokens.
type NodeTokens struct {
	store storage.Interface

	mu         sync.RWMutex
	byHash     map[[32]byte]string // sha256(token) -> node
	byNode     map[string]string   // node -> token
	lastReload time.Time
}

// NewNodeTokens loads the stored node tokens.
func NewNodeTokens(ctx context.Context, store storage.Interface) (*NodeTokens, error) {
	t := &NodeTokens{store: store}
	if err := t.reload(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *NodeTokens) reload(ctx context.Context) error {
	list := &corev1.SecretList{}
	if err := t.store.List(ctx, nodeTokensPrefix, storage.ListOptions{}, list); err != nil {
		return fmt.Errorf("load node tokens: %w", err)
	}
	byHash, byNode := map[[32]byte]string{}, map[string]string{}
	for _, s := range list.Items {
		tok := string(s.Data["token"])
		byHash[sha256.Sum256([]byte(tok))] = s.Name
		byNode[s.Name] = tok
	}
	t.mu.Lock()
	t.byHash, t.byNode, t.lastReload = byHash, byNode, time.Now()
	t.mu.Unlock()
	return nil
}

// Lookup returns the node of a token. An unknown token triggers at most one reload a
// second, so tokens issued by another API server are found.
func (t *NodeTokens) Lookup(ctx context.Context, token string) (string, bool) {
	h := sha256.Sum256([]byte(token))
	t.mu.RLock()
	node, ok := t.byHash[h]
	stale := time.Since(t.lastReload) > time.Second
	t.mu.RUnlock()
	if ok || !stale {
		return node, ok
	}
	if err := t.reload(ctx); err != nil {
		return "", false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	node, ok = t.byHash[h]
	return node, ok
}

// TokenFor returns a node's token (for calls to its agent).
func (t *NodeTokens) TokenFor(ctx context.Context, node string) (string, bool) {
	t.mu.RLock()
	tok, ok := t.byNode[node]
	t.mu.RUnlock()
	if ok {
		return tok, true
	}
	s := &corev1.Secret{}
	if err := t.store.Get(ctx, nodeTokensPrefix+node, s); err != nil {
		return "", false
	}
	return string(s.Data["token"]), true
}

// Set stores a node's token, replacing an older one.
func (t *NodeTokens) Set(ctx context.Context, node, token string) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: node}, Type: "skiff.io/node-token", Data: map[string][]byte{"token": []byte(token)}}
	key := nodeTokensPrefix + node
	err := t.store.Create(ctx, key, s, &corev1.Secret{}, 0)
	if storage.IsExists(err) {
		err = t.store.GuaranteedUpdate(ctx, key, &corev1.Secret{}, nil, func(runtime.Object) (runtime.Object, error) { return s, nil })
	}
	if err != nil {
		return fmt.Errorf("store token of node %s: %w", node, err)
	}
	t.mu.Lock()
	for h, n := range t.byHash {
		if n == node {
			delete(t.byHash, h)
		}
	}
	t.byHash[sha256.Sum256([]byte(token))] = node
	t.byNode[node] = token
	t.mu.Unlock()
	return nil
}

// authenticate maps the request's bearer token to a user.
func (s *Server) authenticate(r *http.Request) (*User, bool) {
	tok := bearer(r)
	if tok == "" {
		return nil, false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.AdminToken)) == 1 {
		return Admin, true
	}
	if node, ok := s.nodeTokens.Lookup(r.Context(), tok); ok {
		return &User{Name: "system:node:" + node, Groups: []string{"system:nodes", "system:authenticated"}}, true
	}
	return nil, false
}
