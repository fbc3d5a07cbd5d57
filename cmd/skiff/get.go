package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/cmd/skiff/internal/cli"
)

func init() { rootCmd.AddCommand(newGetCmd()) }

func newGetCmd() *cobra.Command {
	var o cli.GetOptions
	cmd := &cobra.Command{
		Use:   "get TYPE[,TYPE...] [NAME...] | TYPE/NAME...",
		Short: "List objects as tables, or print them as yaml, json, names or a jsonpath",
		Long: `List objects. TYPE is a resource name, its singular, or a short name:
po pods, svc services, deploy deployments, rs replicasets, rc replicationcontrollers,
ns namespaces, no nodes, cm configmaps, ep endpoints, endpointslices, secrets, events, leases.`,
		Example: `  skiff get pods -o wide
  skiff get deploy web -o yaml
  skiff get svc -A
  skiff get pods -l app=web -w
  skiff get deploy web -o jsonpath='{.spec.replicas}'`,
		Args:              cobra.ArbitraryArgs, // Get explains a missing type better than cobra
		ValidArgsFunction: completeObjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCLI(func(ctx context.Context, f *cli.Factory) error { return f.Get(ctx, args, o) })
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Output, "output", "o", "", "wide, yaml, json, name, or jsonpath=TEMPLATE")
	fl.StringVarP(&o.Selector, "selector", "l", "", "label selector, e.g. app=web,tier!=db")
	fl.StringVar(&o.FieldSelector, "field-selector", "", "field selector, e.g. metadata.name=web")
	fl.BoolVarP(&o.Watch, "watch", "w", false, "after listing, print rows as the objects change")
	fl.BoolVar(&o.WatchOnly, "watch-only", false, "print only changes, not the current list")
	fl.BoolVar(&o.NoHeaders, "no-headers", false, "omit the table header")
	return cmd
}
