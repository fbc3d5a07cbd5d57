package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newLabelCmd()) }

func newLabelCmd() *cobra.Command {
	var overwrite bool
	var selector string
	cmd := &cobra.Command{
		Use:   "label TYPE NAME... | TYPE/NAME... KEY=VALUE... KEY-...",
		Short: "Set (KEY=VALUE) or remove (KEY-) labels",
		Example: `  skiff label deploy web tier=frontend
  skiff label deploy/web tier=backend --overwrite
  skiff label deploy web tier-`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeObjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Label(ctx, args, overwrite, selector) })
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace labels that already have a different value")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label the objects of TYPE matching this selector")
	return cmd
}
