package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

// globals holds the flags every client command shares (--kubeconfig, --context, -n, -A, -v).
var globals = cli.NewGlobals()

func init() {
	pf := rootCmd.PersistentFlags()
	pf.StringVar(&globals.Kubeconfig, "kubeconfig", "", "path to the client config (default $SKIFF_KUBECONFIG, then ~/.skiff/kubeconfig, then $KUBECONFIG)")
	pf.StringVar(&globals.Context, "context", "", "the kubeconfig context to use")
	pf.StringVarP(&globals.Namespace, "namespace", "n", "", "the namespace of the request (default: the context's namespace, else \"default\")")
	pf.BoolVarP(&globals.AllNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	pf.IntVarP(&globals.Verbosity, "v", "v", 0, "log level: 0 warnings, 1 info, 2+ debug")

	prev := rootCmd.PersistentPreRunE
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		// Daemons (server, agent) log at info by default; client commands lower it in runCLI.
		level := slog.LevelInfo
		if globals.Verbosity >= 2 {
			level = slog.LevelDebug
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

// clientConfig returns the REST config from --kubeconfig/--context (see cli.Globals.RESTConfig).
func clientConfig() (*rest.Config, error) { return globals.RESTConfig() }

// namespace returns -n, else the kubeconfig context's namespace, else "default".
func namespace() string { return globals.NamespaceOrDefault() }

// allNamespaces reports whether -A was given.
func allNamespaces() bool { return globals.AllNamespaces }

// runCLI runs a client command with a factory built from the global flags and a context that
// ends on Ctrl-C, and turns its error into one clear message and an exit code.
func runCLI(fn func(ctx context.Context, f *cli.Factory) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli.SetupClientLogging(globals.Verbosity)
	f := cli.NewFactory(globals)
	err := fn(ctx, f)
	if err == nil {
		return nil
	}
	var silent cli.ErrSilent
	if errors.As(err, &silent) {
		// The messages are already on stderr, and main would add an empty "error:" line.
		stop()
		os.Exit(silent.Code)
	}
	code := 1
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		code = ee.Code
	}
	return &exitError{code: code, err: cli.Explain(err, f.Host())}
}

// completeObjects completes "TYPE NAME..." arguments from the server (for get, describe, ...).
func completeObjects(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	cli.SetupClientLogging(0)
	return cli.NewFactory(globals).Complete(args, toComplete), cobra.ShellCompDirectiveNoFileComp
}
