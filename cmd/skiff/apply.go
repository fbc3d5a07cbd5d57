package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() {
	rootCmd.AddCommand(newManifestCmd(cli.ApplyOptions{}, &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects from manifests (three-way merge, as kubectl apply)",
		Example: `  skiff apply -f web.yaml
  skiff apply -R -f manifests/
  cat web.yaml | skiff apply -f -`,
	}, "apply the valid objects even when others are invalid (default: validate all first and change nothing if any is bad)"))
	rootCmd.AddCommand(newManifestCmd(cli.ApplyOptions{CreateOnly: true}, &cobra.Command{
		Use:   "create -f FILE|DIR|-",
		Short: "Create objects from manifests; existing objects are an error",
	}, "create the valid objects even when others are invalid"))
}

// newManifestCmd completes apply and create, which differ only in CreateOnly.
func newManifestCmd(o cli.ApplyOptions, cmd *cobra.Command, continueHelp string) *cobra.Command {
	var dryRun string
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch dryRun {
		case "", "none":
		case "server":
			o.DryRunServer = true
		default:
			return fmt.Errorf("--dry-run=%s: only --dry-run=server is supported", dryRun)
		}
		return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Apply(ctx, o) })
	}
	cmd.Flags().StringSliceVarP(&o.Files, "filename", "f", nil, "manifest file, directory or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&o.Recursive, "recursive", "R", false, "read directories recursively")
	cmd.Flags().StringVar(&dryRun, "dry-run", "", "server: send the objects with dryRun=All and change nothing")
	cmd.Flags().BoolVar(&o.ContinueOnError, "continue-on-error", false, continueHelp)
	return cmd
}
