package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newLogsCmd()) }

func newLogsCmd() *cobra.Command {
	var o cli.LogsOptions
	cmd := &cobra.Command{
		Use:     "logs POD [-c CONTAINER] [-f]",
		Short:   "Print a container's log (through the API server and the node agent)",
		Example: "  skiff logs web-5d8f7-abcde\n  skiff logs web-5d8f7-abcde -c sidecar -f",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Logs(ctx, args[0], o) })
		},
	}
	cmd.Flags().StringVarP(&o.Container, "container", "c", "", "the container (needed when the pod has several)")
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing as the log grows")
	cmd.Flags().Int64Var(&o.Tail, "tail", -1, "only the last N lines (-1: all)")
	return cmd
}
