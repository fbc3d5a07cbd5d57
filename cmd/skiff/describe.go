package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newDescribeCmd()) }

func newDescribeCmd() *cobra.Command {
	var selector string
	cmd := &cobra.Command{
		Use:               "describe TYPE [NAME...] | TYPE/NAME",
		Short:             "Show details of objects and their recent events",
		Example:           "  skiff describe deploy web\n  skiff describe pods -l app=web",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeObjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Describe(ctx, args, selector) })
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "describe the objects matching this label selector")
	return cmd
}
