package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newEditCmd()) }

func newEditCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "edit TYPE NAME | TYPE/NAME",
		Short:             "Edit an object in $KUBE_EDITOR or $EDITOR and save it back",
		Example:           "  skiff edit deploy web\n  KUBE_EDITOR=nano skiff edit cm/web-config",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeObjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Edit(ctx, args) })
		},
	}
}
