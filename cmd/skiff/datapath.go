package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffnet/skiff/datapath"
)

func init() { rootCmd.AddCommand(newDatapathCmd()) }

func newDatapathCmd() *cobra.Command {
	var pinDir string
	cmd := &cobra.Command{
		Use:   "datapath",
		Short: "Inspect the node's eBPF service maps (services, backends, conntrack, verify)",
	}
	cmd.PersistentFlags().StringVar(&pinDir, "pin-dir", datapath.DefaultPinDir, "where the agent pins the datapath maps")
	open := func() (*datapath.Maps, error) { return datapath.OpenPinned(pinDir) }
	// mapsCmd is a subcommand that prints one table from the pinned maps.
	mapsCmd := func(use, short string, print func(*datapath.Maps, *tabwriter.Writer) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				m, err := open()
				if err != nil {
					return err
				}
				defer m.Close()
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				if err := print(m, w); err != nil {
					return err
				}
				return w.Flush()
			},
		}
	}
	cmd.AddCommand(mapsCmd("services", "Print the service frontends with their backends and counters", printServices))
	cmd.AddCommand(mapsCmd("backends", "Print the backends map", printBackends))
	cmd.AddCommand(mapsCmd("conntrack", "Print the conntrack and SNAT entries", printConntrack))

	var nodeIPs []string
	var nodeName string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Compare the maps with the API's Services and EndpointSlices; exit 1 on drift",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ips []net.IP
			for _, s := range nodeIPs {
				ip := net.ParseIP(s)
				if ip == nil || ip.To4() == nil {
					return fmt.Errorf("--node-ip %q is not an IPv4 address", s)
				}
				ips = append(ips, ip)
			}
			rc, err := clientConfig()
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			svcs, slices, err := listServices(ctx, client)
			if err != nil {
				return err
			}
			m, err := open()
			if err != nil {
				return err
			}
			defer m.Close()
			drifts, err := datapath.Verify(m, datapath.Config{NodeIPs: ips, NodeName: nodeName}, svcs, slices)
			if err != nil {
				return err
			}
			if len(drifts) == 0 {
				fmt.Printf("no drift: the maps match %d Services\n", len(svcs))
				return nil
			}
			for _, d := range drifts {
				fmt.Println(d)
			}
			return &exitError{code: 1, err: fmt.Errorf("%d differences between the maps and the API", len(drifts))}
		},
	}
	verify.Flags().StringSliceVar(&nodeIPs, "node-ip", nil, "this node's IPs for NodePort frontends (default: inferred from the maps)")
	verify.Flags().StringVar(&nodeName, "node-name", "", "this node's name, for externalTrafficPolicy=Local (default: hostname)")
	cmd.AddCommand(verify)
	return cmd
}

func printServices(m *datapath.Maps, w *tabwriter.Writer) error {
	fs, err := m.Frontends()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "FRONTEND\tPROTO\tSCOPE\tID\tBACKENDS\tPACKETS\tBYTES")
	for _, f := range fs {
		bs := make([]string, 0, len(f.Backends))
		for _, b := range f.Backends {
			bs = append(bs, fmt.Sprintf("%s(%d)", b, f.Slots[b]))
		}
		list := strings.Join(bs, ",")
		if f.Count == 0 {
			list = "<none: refused>"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\t%d\n", f.Address, f.Protocol, f.Scope, f.ID, list, f.Packets, f.Bytes)
	}
	// The drop summary goes under the table, so the table is flushed first.
	w.Flush()
	drops, err := m.Drops()
	if err != nil {
		return err
	}
	if len(drops) > 0 {
		var parts []string
		for r, n := range drops {
			parts = append(parts, fmt.Sprintf("%s=%d", r, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "\ndrops: %s\n", strings.Join(parts, " "))
	}
	return nil
}

func printBackends(m *datapath.Maps, w *tabwriter.Writer) error {
	bs, err := m.Backends()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "ID\tADDRESS\tPROTO\tLOCAL")
	for _, b := range bs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%v\n", b.ID, b.Address, b.Protocol, b.Local)
	}
	return nil
}

func printConntrack(m *datapath.Maps, w *tabwriter.Writer) error {
	cs, err := m.Conntrack()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "KIND\tPROTO\tSOURCE\tDESTINATION\tNAT\tSNAT-PORT\tSTATE\tEXPIRES-IN\tSVC\tBACKEND")
	for _, c := range cs {
		snat := "-"
		if c.SNATPort != 0 {
			snat = fmt.Sprint(c.SNATPort)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", c.Kind, c.Protocol, c.Src, c.Dst, c.NAT, snat,
			orDash(c.State), c.ExpiresIn.Round(time.Second), c.ServiceID, c.BackendID)
	}
	return nil
}

func listServices(ctx context.Context, client kubernetes.Interface) ([]*corev1.Service, []*discoveryv1.EndpointSlice, error) {
	sl, err := client.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list services: %w", err)
	}
	el, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list endpointslices: %w", err)
	}
	svcs := make([]*corev1.Service, len(sl.Items))
	for i := range sl.Items {
		svcs[i] = &sl.Items[i]
	}
	slices := make([]*discoveryv1.EndpointSlice, len(el.Items))
	for i := range el.Items {
		slices[i] = &el.Items[i]
	}
	return svcs, slices, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
