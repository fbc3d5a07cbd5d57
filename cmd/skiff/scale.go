package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newScaleCmd()) }

func newScaleCmd() *cobra.Command {
	var replicas, current int
	cmd := &cobra.Command{
		Use:     "scale deploy/NAME|rs/NAME|rc/NAME --replicas N",
		Short:   "Set the number of replicas (through the scale subresource)",
		Example: "  skiff scale deploy/web --replicas 5",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Scale(ctx, args, replicas, current) })
		},
	}
	cmd.Flags().IntVar(&replicas, "replicas", -1, "the new number of replicas (required)")
	cmd.Flags().IntVar(&current, "current-replicas", -1, "only scale if the current number of replicas is this")
	_ = cmd.MarkFlagRequired("replicas")
	return cmd
}
