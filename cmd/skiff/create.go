package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newCreateCmd()) }

func newCreateCmd() *cobra.Command {
	o := cli.ApplyOptions{CreateOnly: true}
	var dryRun string
	cmd := &cobra.Command{
		Use:   "create -f FILE|DIR|-",
		Short: "Create objects from manifests; existing objects are an error",
		Args:  cobra.NoArgs,
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
	cmd.Flags().BoolVar(&o.ContinueOnError, "continue-on-error", false, "create the valid objects even when others are invalid")
	return cmd
}
