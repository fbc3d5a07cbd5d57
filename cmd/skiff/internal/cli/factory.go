package cli

import (
	"fmt"
	"io"
	"os"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Factory builds the clients a command needs, once, from the global flags.
type Factory struct {
	Globals *Globals
	Out     io.Writer
	ErrOut  io.Writer
	In      io.Reader

	once   sync.Once
	err    error
	cfg    *rest.Config
	disco  discovery.CachedDiscoveryInterface
	mapper meta.RESTMapper
	dyn    dynamic.Interface
	kube   kubernetes.Interface
}

// NewFactory returns a factory writing to stdout/stderr.
func NewFactory(g *Globals) *Factory {
	return &Factory{Globals: g, Out: os.Stdout, ErrOut: os.Stderr, In: os.Stdin}
}

func (f *Factory) init() error {
	f.once.Do(func() {
		cfg, err := f.Globals.RESTConfig()
		if err != nil {
			f.err = err
			return
		}
		f.cfg = cfg
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			f.err = fmt.Errorf("discovery client: %w", err)
			return
		}
		f.disco = memory.NewMemCacheClient(dc)
		deferred := restmapper.NewDeferredDiscoveryRESTMapper(f.disco)
		f.mapper = restmapper.NewShortcutExpander(deferred, f.disco, func(string) {})
		if f.dyn, err = dynamic.NewForConfig(cfg); err != nil {
			f.err = fmt.Errorf("dynamic client: %w", err)
			return
		}
		if f.kube, err = kubernetes.NewForConfig(cfg); err != nil {
			f.err = fmt.Errorf("clientset: %w", err)
		}
	})
	return f.err
}

// Config is the REST config.
func (f *Factory) Config() (*rest.Config, error) { return f.cfg, f.init() }

// Discovery is the memory-cached discovery client.
func (f *Factory) Discovery() (discovery.CachedDiscoveryInterface, error) { return f.disco, f.init() }

// Mapper maps kinds and resource names (plurals, singulars, short names) to REST mappings.
func (f *Factory) Mapper() (meta.RESTMapper, error) { return f.mapper, f.init() }

// Dynamic is the generic client.
func (f *Factory) Dynamic() (dynamic.Interface, error) { return f.dyn, f.init() }

// Kube is the typed clientset.
func (f *Factory) Kube() (kubernetes.Interface, error) { return f.kube, f.init() }

// Namespace is the request namespace (-n, the context's, or default).
func (f *Factory) Namespace() string { return f.Globals.NamespaceOrDefault() }

// ExplicitNamespace reports whether -n was given.
func (f *Factory) ExplicitNamespace() bool { return f.Globals.Namespace != "" }

// Host is the server URL, for error messages.
func (f *Factory) Host() string {
	if f.cfg != nil {
		return f.cfg.Host
	}
	return ""
}
