package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newApplyCmd()) }

func newApplyCmd() *cobra.Command {
	var o cli.ApplyOptions
	var dryRun string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects from manifests (three-way merge, as kubectl apply)",
		Example: `  skiff apply -f web.yaml
  skiff apply -R -f manifests/
  cat web.yaml | skiff apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch dryRun {
			case "", "none":
			case "server":
				o.DryRunServer = true
			default:
				return fmt.Errorf("--dry-run=%s: only --dry-run=server is supported", dryRun)
			}
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Apply(ctx, o) })
		},
	}
	cmd.Flags().StringSliceVarP(&o.Files, "filename", "f", nil, "manifest file, directory or - for stdin (repeatable)")
	cmd.Flags().BoolVarP(&o.Recursive, "recursive", "R", false, "read directories recursively")
	cmd.Flags().StringVar(&dryRun, "dry-run", "", "server: send the objects with dryRun=All and change nothing")
	cmd.Flags().BoolVar(&o.ContinueOnError, "continue-on-error", false, "apply the valid objects even when others are invalid (default: validate all first and change nothing if any is bad)")
	return cmd
}
