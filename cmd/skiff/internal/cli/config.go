// Package cli holds the logic of skiff's kubectl-like client commands; cmd/skiff only parses flags.
package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Globals are the flags shared by every client command.
type Globals struct {
	Kubeconfig    string
	Context       string
	Namespace     string
	AllNamespaces bool
	Verbosity     int

	once   sync.Once
	loader clientcmd.ClientConfig
}

// NewGlobals returns empty globals; cobra fills them in.
func NewGlobals() *Globals { return &Globals{} }

// KubeconfigPath resolves the client config file: --kubeconfig, else $SKIFF_KUBECONFIG, else
// ~/.skiff/kubeconfig when it exists, else "" (client-go's rules: $KUBECONFIG, ~/.kube/config).
func (g *Globals) KubeconfigPath() string {
	if g.Kubeconfig != "" {
		return g.Kubeconfig
	}
	if p := os.Getenv("SKIFF_KUBECONFIG"); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".skiff", "kubeconfig")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func (g *Globals) clientConfig() clientcmd.ClientConfig {
	g.once.Do(func() {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if p := g.KubeconfigPath(); p != "" {
			rules.ExplicitPath = p
		}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: g.Context}
		g.loader = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	})
	return g.loader
}

// RESTConfig loads the client config and explains what to do when there is none.
func (g *Globals) RESTConfig() (*rest.Config, error) {
	if p := g.KubeconfigPath(); p != "" {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("client config %s: %w (pass --kubeconfig with the file `skiff server` wrote to its data dir)", p, err)
		}
	}
	cfg, err := g.clientConfig().ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no client config found: pass --kubeconfig FILE, set $SKIFF_KUBECONFIG, or copy the server's kubeconfig (DATA_DIR/kubeconfig) to ~/.skiff/kubeconfig")
		}
		return nil, fmt.Errorf("load client config %s: %w", g.describePath(), err)
	}
	cfg.UserAgent = "skiff-cli"
	if cfg.QPS == 0 {
		cfg.QPS = 50
		cfg.Burst = 100
	}
	return cfg, nil
}

func (g *Globals) describePath() string {
	if p := g.KubeconfigPath(); p != "" {
		return p
	}
	if p := os.Getenv("KUBECONFIG"); p != "" {
		return p
	}
	return "(~/.kube/config)"
}

// NamespaceOrDefault is -n, else the context's namespace, else "default".
func (g *Globals) NamespaceOrDefault() string {
	if g.Namespace != "" {
		return g.Namespace
	}
	if ns, _, err := g.clientConfig().Namespace(); err == nil && ns != "" {
		return ns
	}
	return "default"
}
