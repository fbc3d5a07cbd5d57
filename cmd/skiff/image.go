package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skiffnet/skiff/kubelet/images"
	"github.com/skiffnet/skiff/kubelet/runtime"
)

func init() { rootCmd.AddCommand(newImageCmd()) }

func newImageCmd() *cobra.Command {
	var node, socket string
	cmd := &cobra.Command{Use: "image", Short: "Manage the images of this machine's nodes (no registry needed)"}
	cmd.PersistentFlags().StringVar(&node, "node", "", "node whose image store to use (default: every skiff node on this containerd)")
	cmd.PersistentFlags().StringVar(&socket, "containerd-socket", "/run/skiff/containerd/containerd.sock", "containerd's socket")

	namespaces := func(ctx context.Context) ([]string, error) {
		if node != "" {
			return []string{runtime.NamespaceFor(node)}, nil
		}
		ns, err := runtime.NodeNamespaces(ctx, socket)
		if err != nil {
			return nil, err
		}
		if len(ns) == 0 {
			return nil, fmt.Errorf("no skiff node uses containerd at %s yet: pass --node NAME", socket)
		}
		return ns, nil
	}

	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE.tar...",
		Short: "Import docker-archive or OCI layout tarballs into the nodes' image stores",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			nss, err := namespaces(ctx)
			if err != nil {
				return err
			}
			for _, ns := range nss {
				rt, err := runtime.New(ctx, socket, ns)
				if err != nil {
					return err
				}
				for _, file := range args {
					f, err := os.Open(file)
					if err != nil {
						rt.Close()
						return fmt.Errorf("open image tarball: %w", err)
					}
					names, err := rt.Import(ctx, f)
					f.Close()
					if err != nil {
						rt.Close()
						return fmt.Errorf("%s: %w", file, err)
					}
					for _, n := range names {
						fmt.Fprintf(cmd.OutOrStdout(), "imported %s into %s\n", n, ns)
					}
				}
				rt.Close()
			}
			return nil
		},
	})

	cmd.AddCommand(&cobra.Command{
		Use:   "ls",
		Short: "List the nodes' images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			nss, err := namespaces(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tIMAGE\tDIGEST\tSIZE")
			for _, ns := range nss {
				rt, err := runtime.New(ctx, socket, ns)
				if err != nil {
					return err
				}
				imgs, err := rt.Images(ctx)
				rt.Close()
				if err != nil {
					return err
				}
				for _, im := range imgs {
					d := im.Digest
					if len(d) > 19 {
						d = d[:19]
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fMB\n", ns[len("skiff-"):], im.Name, d, float64(im.Size)/1e6)
				}
			}
			return tw.Flush()
		},
	})

	var out string
	build := &cobra.Command{
		Use:   "build --out DIR",
		Short: "Build skiff's test images (echo server, DNS client) as tarballs; run inside the skiff source tree",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			paths, err := images.Build(cmd.Context(), out)
			if err != nil {
				return err
			}
			for i, p := range paths {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", images.All[i].Ref, p)
			}
			return nil
		},
	}
	build.Flags().StringVar(&out, "out", "testdata/images", "output directory")
	cmd.AddCommand(build)
	return cmd
}
