package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newDeleteCmd()) }

func newDeleteCmd() *cobra.Command {
	var o cli.DeleteOptions
	cmd := &cobra.Command{
		Use:   "delete TYPE NAME... | TYPE/NAME... | -f FILE | TYPE -l SELECTOR",
		Short: "Delete objects; --wait polls until they are gone",
		Example: `  skiff delete deploy web
  skiff delete -f web.yaml --wait
  skiff delete svc -l app=web`,
		ValidArgsFunction: completeObjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Delete(ctx, args, o) })
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&o.Files, "filename", "f", nil, "delete the objects of this manifest file, directory or - (stdin)")
	fl.BoolVarP(&o.Recursive, "recursive", "R", false, "read directories recursively")
	fl.StringVarP(&o.Selector, "selector", "l", "", "delete the objects of TYPE matching this label selector")
	fl.BoolVar(&o.All, "all", false, "delete every object of TYPE in the namespace")
	fl.BoolVar(&o.Wait, "wait", false, "wait until the objects are gone (exit 1 on timeout)")
	fl.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long --wait waits")
	fl.BoolVar(&o.IgnoreNotFound, "ignore-not-found", false, "treat missing objects as deleted")
	fl.IntVar(&o.GracePeriod, "grace-period", -1, "seconds pods get to stop (-1: their own default)")
	return cmd
}
