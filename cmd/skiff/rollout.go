package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newRolloutCmd()) }

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout status|history|undo|restart deploy/NAME",
		Short: "Follow, list, undo or restart a deployment's rollout",
	}
	var timeout time.Duration
	var watch bool
	status := &cobra.Command{
		Use:   "status deploy/NAME",
		Short: "Print progress until the rollout finishes (exit 0) or fails or times out (exit 1)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.RolloutStatus(ctx, args, timeout, watch) })
		},
	}
	status.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: never)")
	status.Flags().BoolVarP(&watch, "watch", "w", true, "keep watching until the rollout ends")

	var rev int64
	history := &cobra.Command{
		Use:   "history deploy/NAME",
		Short: "List the deployment's revisions",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.RolloutHistory(ctx, args, rev) })
		},
	}
	history.Flags().Int64Var(&rev, "revision", 0, "show the pod template of this revision")

	var toRev int64
	var dryRun string
	undo := &cobra.Command{
		Use:   "undo deploy/NAME",
		Short: "Roll back to the previous revision, or --to-revision N",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error {
				return f.RolloutUndo(ctx, args, toRev, dryRun == "server")
			})
		},
	}
	undo.Flags().Int64Var(&toRev, "to-revision", 0, "the revision to roll back to (0: the previous one)")
	undo.Flags().StringVar(&dryRun, "dry-run", "", "server: check the rollback without changing anything")

	restart := &cobra.Command{
		Use:   "restart deploy/NAME",
		Short: "Restart every pod of the deployment with a rolling update",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.RolloutRestart(ctx, args, time.Now()) })
		},
	}
	cmd.AddCommand(status, history, undo, restart)
	return cmd
}
