package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiffnet/skiff/controlplane/pki"
)

// Options describe a local cluster.
type Options struct {
	Cluster          string // name; namespaces are skiff-<Cluster>-<i>
	Nodes            int
	DataDir          string // default /var/lib/skiff/<Cluster>
	Binary           string // the skiff binary the daemons run (default: this executable)
	ContainerdSocket string
	ServiceCIDR      string
	ClusterCIDR      string
	Subnet           string // the private /24 of the node network
	Out              io.Writer
}

func (o *Options) defaults() error {
	if o.Cluster == "" {
		o.Cluster = "skiff"
	}
	if strings.ContainsAny(o.Cluster, "/. ") || len(o.Cluster) > 8 {
		return fmt.Errorf("--name %q: use at most 8 letters, digits or dashes", o.Cluster)
	}
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return fmt.Errorf("--nodes %d: must be between 1 and %d", o.Nodes, MaxNodes)
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join("/var/lib/skiff", o.Cluster)
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Binary = exe
	}
	if o.ContainerdSocket == "" {
		o.ContainerdSocket = "/run/skiff/containerd/containerd.sock"
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/12"
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = "10.244.0.0/16"
	}
	if o.Subnet == "" {
		o.Subnet = "172.30.0.0/24"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

func (o *Options) network() (*Network, error) {
	var ranges []*net.IPNet
	for _, s := range []string{o.ServiceCIDR, o.ClusterCIDR} {
		_, r, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("CIDR %q: %w", s, err)
		}
		ranges = append(ranges, r)
	}
	_, sub, err := net.ParseCIDR(o.Subnet)
	if err != nil || sub.IP.To4() == nil {
		return nil, fmt.Errorf("--subnet %q: want a private IPv4 /24 such as 172.30.0.0/24", o.Subnet)
	}
	if ones, _ := sub.Mask.Size(); ones != 24 {
		return nil, fmt.Errorf("--subnet %q: want a /24", o.Subnet)
	}
	return &Network{Cluster: o.Cluster, Subnet: sub, Ranges: ranges}, nil
}

func (o *Options) runDir() string       { return filepath.Join(o.DataDir, "run") }
func (o *Options) serverDir() string    { return filepath.Join(o.DataDir, "server") }
func (o *Options) upPidFile() string    { return filepath.Join(o.DataDir, "up.pid") }
func (o *Options) nodeDir(i int) string { return filepath.Join(o.DataDir, "nodes", strconv.Itoa(i)) }

// Kubeconfig is the admin kubeconfig of the cluster.
func (o *Options) Kubeconfig() string { return filepath.Join(o.serverDir(), pki.KubeconfigFile) }

// Up brings the cluster up and supervises it until ctx ends, then stops the daemons and
// removes the network (the data dir stays, so a later Up resumes with the same objects).
func Up(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("skiff up needs root (network namespaces, BPF, containerd): run it with sudo")
	}
	if pid, ok := alive(o.upPidFile()); ok && pid != os.Getpid() {
		return fmt.Errorf("a cluster %q is already up (skiff up, pid %d): stop it with Ctrl-C there, or run skiff down", o.Cluster, pid)
	}
	nw, err := o.network()
	if err != nil {
		return err
	}
	started := time.Now()
	if err := os.MkdirAll(o.runDir(), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(o.upPidFile(), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(o.upPidFile())

	// Leftovers of a crashed run: daemons still running, nodes beyond the new count.
	stopLeftovers(o.runDir())
	for i := o.Nodes + 1; i <= MaxNodes; i++ {
		if _, err := os.Stat(nw.nodeNetnsPath(i)); err == nil {
			fmt.Fprintf(o.Out, "removing leftover node %s\n", nw.NodeName(i))
			removeNode(nw, i)
		}
	}

	fmt.Fprintf(o.Out, "network: bridge %s %s, %d node namespaces\n", nw.BridgeName(), o.Subnet, o.Nodes)
	if err := nw.EnsureBridge(); err != nil {
		return err
	}
	if err := ensureNodes(nw, o.Nodes); err != nil {
		return err
	}
	tNetwork := time.Since(started)

	hostIP := nw.HostIP().String()
	server := &proc{name: "server", dir: o.runDir(), args: []string{o.Binary, "server",
		"--data-dir", o.serverDir(),
		"--listen", net.JoinHostPort(hostIP, "6443"),
		"--advertise-address", hostIP,
		"--service-cidr", o.ServiceCIDR,
		"--cluster-cidr", o.ClusterCIDR,
		// A laptop cluster should notice a lost node sooner than a data centre does.
		"--node-monitor-grace-period", "20s",
		"--pod-eviction-timeout", "20s",
	}}
	fmt.Fprintf(o.Out, "control plane: starting (log %s)\n", server.logFile())
	exits := make(chan *proc, 2*(o.Nodes+1))
	server.exits = exits
	if err := server.start(); err != nil {
		return err
	}
	procs := []*proc{server}
	defer func() {
		// Agents first, so they do not spin on a missing API server.
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop(10 * time.Second)
		}
		if err := nw.Teardown(); err != nil {
			fmt.Fprintf(o.Out, "cleanup: %v\n", err)
		}
		fmt.Fprintln(o.Out, "cluster stopped")
	}()

	client, err := waitForServer(ctx, o.Kubeconfig(), server)
	if err != nil {
		return err
	}
	token, err := os.ReadFile(filepath.Join(o.serverDir(), pki.JoinTokenFile))
	if err != nil {
		return fmt.Errorf("read join token: %w", err)
	}
	tServer := time.Since(started)
	fmt.Fprintf(o.Out, "%5.1fs control plane ready\n", tServer.Seconds())
	oldSlices := dnsSlices(ctx, client)

	var agents []*proc
	for i := 1; i <= o.Nodes; i++ {
		a := &proc{name: fmt.Sprintf("agent-%d", i), dir: o.runDir(), netns: nw.nodeNetnsPath(i), exits: exits, args: []string{o.Binary, "agent",
			"--server", "https://" + net.JoinHostPort(hostIP, "6443"),
			"--token", strings.TrimSpace(string(token)),
			"--node-name", nw.NodeName(i),
			"--node-ip", nw.NodeIP(i).String(),
			"--data-dir", o.nodeDir(i),
			"--containerd-socket", o.ContainerdSocket,
			"--service-cidr", o.ServiceCIDR,
			"--bpf-pin-dir", filepath.Join(PinRoot, nw.NodeName(i)),
			// The defaults, spelled out: a local node is a whole node.
			"--datapath", "--devices", "eth0", "--overlay", "--dns",
		}}
		if err := a.start(); err != nil {
			return err
		}
		procs = append(procs, a)
		agents = append(agents, a)
	}
	fmt.Fprintf(o.Out, "nodes: %d agents starting (logs in %s)\n", o.Nodes, o.runDir())
	if err := waitForNodes(ctx, client, nw, o.Nodes, started, oldSlices, agents, o.Out); err != nil {
		return err
	}
	total := time.Since(started)
	fmt.Fprintf(o.Out, "cluster ready in %.1fs (network %.1fs, control plane %.1fs, nodes %.1fs)\n",
		total.Seconds(), tNetwork.Seconds(), (tServer - tNetwork).Seconds(), (total - tServer).Seconds())
	fmt.Fprintf(o.Out, "  kubeconfig: %s   (export SKIFF_KUBECONFIG=%s)\n", o.Kubeconfig(), o.Kubeconfig())
	fmt.Fprintf(o.Out, "  nodes:      ")
	for i := 1; i <= o.Nodes; i++ {
		fmt.Fprintf(o.Out, "%s=%s ", nw.NodeName(i), nw.NodeIP(i))
	}
	fmt.Fprintf(o.Out, "\n  NodePorts answer on every node IP: curl http://%s:<nodePort>/\n", nw.NodeIP(1))
	fmt.Fprintln(o.Out, "  Ctrl-C stops the cluster; skiff down removes what is left.")

	return supervise(ctx, exits, o.Out)
}

// ensureNodes creates (or repairs) the node namespaces, all at once: each is a handful of
// netlink calls and two ethtool runs.
func ensureNodes(nw *Network, n int) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns, err := nw.EnsureNode(i)
			if err == nil {
				ns.Close()
			}
			errs[i-1] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// restartDelay is how long supervise waits before it restarts a daemon: long enough for
// whoever stopped an agent on purpose to remove its node namespace too (a node taken away),
// and for a daemon that cannot start not to spin.
const restartDelay = time.Second

// supervise restarts a daemon that exits, unless its node namespace was removed (a node
// taken away on purpose), until ctx ends. Restarts happen here, never after it returns, so
// Up's stopping of the daemons does not race one.
func supervise(ctx context.Context, exits <-chan *proc, out io.Writer) error {
	due := make(chan *proc)
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-exits:
			fmt.Fprintf(out, "%s exited (%v)\n", p.name, p.exitErr)
			go func() {
				select {
				case <-ctx.Done():
				case <-time.After(restartDelay):
					select {
					case due <- p:
					case <-ctx.Done():
					}
				}
			}()
		case p := <-due:
			if p.netns != "" {
				if _, err := os.Stat(p.netns); err != nil {
					fmt.Fprintf(out, "%s: its node namespace is gone; not restarting\n", p.name)
					continue
				}
			}
			fmt.Fprintf(out, "restarting %s\n", p.name)
			if err := p.start(); err != nil {
				fmt.Fprintf(out, "restart %s: %v\n", p.name, err)
			}
		}
	}
}

func stopLeftovers(runDir string) {
	pids, _ := filepath.Glob(filepath.Join(runDir, "*.pid"))
	for _, p := range pids {
		stopPidFile(p, 10*time.Second)
	}
}

// Down stops a running `skiff up` of the cluster (or the daemons a crashed one left) and
// removes its namespaces, links, routes, containers and pinned BPF state.
func Down(ctx context.Context, o Options) error {
	o.Nodes = 1
	if err := o.defaults(); err != nil {
		return err
	}
	nw, err := o.network()
	if err != nil {
		return err
	}
	if pid, ok := alive(o.upPidFile()); ok {
		fmt.Fprintf(o.Out, "stopping skiff up (pid %d)\n", pid)
		stopPidFile(o.upPidFile(), 30*time.Second)
	}
	stopLeftovers(o.runDir())
	var errs []error
	if err := cleanupNodes(ctx, o, nw); err != nil {
		errs = append(errs, err)
	}
	if err := nw.Teardown(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		fmt.Fprintf(o.Out, "cluster %q removed (data kept in %s)\n", o.Cluster, o.DataDir)
	}
	return errors.Join(errs...)
}
