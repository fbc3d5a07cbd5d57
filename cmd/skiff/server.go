package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/controllers"
	"github.com/skiffnet/skiff/controlplane/server"
)

func init() { rootCmd.AddCommand(newServerCmd()) }

func newServerCmd() *cobra.Command {
	var cfg server.Config
	var etcdEndpoints string
	var ctrl controllers.Options
	var noControllers bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: etcd (embedded unless --etcd-endpoints) and the API server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if etcdEndpoints != "" {
				for _, ep := range strings.Split(etcdEndpoints, ",") {
					if ep = strings.TrimSpace(ep); ep != "" {
						cfg.EtcdEndpoints = append(cfg.EtcdEndpoints, ep)
					}
				}
			}
			srv, err := server.New(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if !noControllers {
				ctrl.ClusterCIDR = cfg.ClusterCIDR
				if err := srv.AddPostStartHook("controllers", func(ctx context.Context, admin *rest.Config) error {
					return controllers.Start(ctx, admin, ctrl)
				}); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go func() {
				select {
				case <-srv.Ready():
					fmt.Fprintf(cmd.OutOrStdout(), "skiff API server at %s\nadmin kubeconfig: %s\njoin token file: %s/join-token\n",
						srv.URL(), srv.KubeconfigPath(), srv.DataDir())
				case <-ctx.Done():
				}
			}()
			if err := srv.Run(ctx); err != nil {
				return err
			}
			slog.Info("server stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "directory for etcd data, the CA, certificates, tokens and the admin kubeconfig")
	f.StringVar(&cfg.Listen, "listen", server.DefaultListen, "HOST:PORT of the HTTPS API")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "IP at which nodes and the kubernetes Service reach this server (default: the listen IP, or the default route's address)")
	f.StringVar(&etcdEndpoints, "etcd-endpoints", "", "comma-separated URLs of an external etcd cluster (default: embedded etcd in the data dir)")
	f.StringVar(&cfg.EtcdCAFile, "etcd-cafile", "", "CA certificate of the external etcd servers")
	f.StringVar(&cfg.EtcdCertFile, "etcd-certfile", "", "client certificate for the external etcd")
	f.StringVar(&cfg.EtcdKeyFile, "etcd-keyfile", "", "client key for the external etcd")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", server.DefaultServiceCIDR, "range of ClusterIPs")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", server.DefaultClusterCIDR, "range of pod IPs (a /24 per node)")
	f.StringVar(&cfg.NodePortRange, "service-node-port-range", server.DefaultNodePortRange, "range of NodePorts, FIRST-LAST")
	f.StringVar(&cfg.InsecureListen, "insecure-listen", "", "loopback HOST:PORT served over plain HTTP without authentication, as admin (off by default)")
	f.DurationVar(&ctrl.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "a node whose Lease is not renewed this long becomes NotReady")
	f.DurationVar(&ctrl.PodEvictionTimeout, "pod-eviction-timeout", 60*time.Second, "pods leave a NotReady/unreachable node this long after it was tainted")
	f.BoolVar(&noControllers, "disable-controllers", false, "run only the API server (no scheduler or controllers)")
	return cmd
}
