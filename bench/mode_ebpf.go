package bench

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/skiffnet/skiff/datapath"
)

// ebpfMode is skiff's datapath, loaded into the node netns with its own pin dir: ebpf-tc
// attaches the per-packet programs to every node-side veth (the client's and each pod's),
// ebpf-sock attaches only the socket hooks, to the load generators' cgroup.
type ebpfMode struct {
	name   string
	env    *Env
	pinDir string
	dp     *datapath.Datapath
}

func newEBPFMode(name string) (Mode, error) { return &ebpfMode{name: name}, nil }

func (m *ebpfMode) Name() string     { return m.name }
func (m *ebpfMode) Translates() bool { return true }

func (m *ebpfMode) Setup(env *Env, n, b int) error {
	m.env = env
	m.pinDir = env.PinPrefix + RandomID()
	cfg := datapath.Config{
		PinDir:      m.pinDir,
		ServiceCIDR: ServiceCIDR,
		NodeIPs:     []net.IP{clientGW},
		NodeName:    "bench-node",
		// Frontends are service ports: N plus the measured services' UDP ports.
		MaxServices: n + 1024,
		MaxBackends: n*(b+1) + 1024,
	}
	if m.name == ModeEBPFSock {
		cfg.CgroupPath = env.Cgroup
	}
	return env.Topo.Node.Do(func() error {
		dp, err := datapath.New(cfg)
		if err != nil {
			os.RemoveAll(m.pinDir)
			return fmt.Errorf("datapath.New: %w", err)
		}
		m.dp = dp
		if m.name == ModeEBPFTC {
			for _, l := range env.Topo.NodeLinks {
				if err := dp.AttachPod(l); err != nil {
					return fmt.Errorf("attach to %s: %w", l, err)
				}
			}
		}
		return nil
	})
}

func (m *ebpfMode) Clear() error                   { return m.dp.Sync(nil, nil) }
func (m *ebpfMode) FullSync(set *ServiceSet) error { return m.dp.Sync(set.Services, set.Slices) }

func (m *ebpfMode) Update(set *ServiceSet, i int, _ *svcState) error {
	return m.dp.UpsertService(set.Services[i], []*discoveryv1.EndpointSlice{set.Slices[i]})
}

// Memory sums the kernel memory charged for every pinned map (fdinfo "memlock"), which for
// preallocated maps is their full size, whatever they hold.
func (m *ebpfMode) Memory() (int64, string, error) {
	var total int64
	err := filepath.WalkDir(m.pinDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		mp, err := ebpf.LoadPinnedMap(p, &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			return nil // a pinned link or program
		}
		defer mp.Close()
		total += fdinfoMemlock(mp.FD())
		return nil
	})
	return total, "sum of the pinned maps' memlock (sized for N, preallocated)", err
}

func fdinfoMemlock(fd int) int64 {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "memlock:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func (m *ebpfMode) Teardown() error {
	if m.dp == nil {
		return os.RemoveAll(m.pinDir)
	}
	var err error
	m.env.Topo.Node.Do(func() error { err = m.dp.Remove(); return nil })
	m.dp = nil
	return err
}
