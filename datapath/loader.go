package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// sharedMaps are the maps every object declares (bpf/lib/maps.h); they are pinned by name so
// the three objects share one instance of each and the maps outlive the agent.
var sharedMaps = []string{"services", "backends", "maglev", "conntrack", "snat", "sock_rev", "counters", "drops"}

// objects is one loaded generation of the programs plus the shared maps.
type objects struct {
	colls []*ebpf.Collection

	podIngress, podEgress           *ebpf.Program
	nodePortIngress, nodePortEgress *ebpf.Program
	connect4, sendmsg4              *ebpf.Program
	recvmsg4, getpeername4          *ebpf.Program

	services, backends, maglev, conntrack *ebpf.Map
	snat, sockRev, counters, drops        *ebpf.Map
}

func (o *objects) close() {
	for _, c := range o.colls {
		c.Close()
	}
}

// specs returns the three collection specs (pod tc, device tc, socket LB).
func specs() ([]*ebpf.CollectionSpec, error) {
	var out []*ebpf.CollectionSpec
	for _, load := range []func() (*ebpf.CollectionSpec, error){loadTcPod, loadTcNodePort, loadSockLB} {
		s, err := load()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf if nothing is mounted there, and makes dir.
func ensureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		if err := os.MkdirAll("/sys/fs/bpf", 0o755); err != nil {
			return fmt.Errorf("create /sys/fs/bpf: %w", err)
		}
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
			return fmt.Errorf("mount bpffs at /sys/fs/bpf: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "links"), 0o700); err != nil {
		return fmt.Errorf("create pin dir %s: %w", dir, err)
	}
	return nil
}

// loadObjects loads the programs, creating the maps or adopting the pinned ones in pinDir.
func loadObjects(cfg Config) (*objects, error) {
	all, err := specs()
	if err != nil {
		return nil, err
	}
	var snatIP uint32 // network order bytes, read as little-endian u32 like the C side
	if len(cfg.NodeIPs) > 0 {
		ip := cfg.NodeIPs[0].To4()
		snatIP = uint32(ip[0]) | uint32(ip[1])<<8 | uint32(ip[2])<<16 | uint32(ip[3])<<24
	}
	sizes := map[string]int{
		"services": cfg.MaxServices, "maglev": cfg.MaxServices, "counters": cfg.MaxServices,
		"backends": cfg.MaxBackends, "conntrack": cfg.MaxConntrack,
		"snat": cfg.MaxConntrack / 4, "sock_rev": cfg.MaxConntrack / 4,
	}
	o := &objects{}
	for _, spec := range all {
		for _, name := range sharedMaps {
			ms, ok := spec.Maps[name]
			if !ok {
				return nil, fmt.Errorf("bpf object lacks map %s", name)
			}
			ms.Pinning = ebpf.PinByName
			if n, ok := sizes[name]; ok {
				ms.MaxEntries = uint32(max(n, 1024))
			}
		}
		if v, ok := spec.Variables["snat_ip"]; ok {
			if err := v.Set(snatIP); err != nil {
				return nil, fmt.Errorf("set snat_ip: %w", err)
			}
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
			Maps: ebpf.MapOptions{PinPath: cfg.PinDir},
		})
		if err != nil {
			o.close()
			if errors.Is(err, ebpf.ErrMapIncompatible) {
				return nil, fmt.Errorf("adopt pinned maps in %s: %w (a map size in the config changed: remove the pin dir to start empty)", cfg.PinDir, err)
			}
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				return nil, fmt.Errorf("load bpf programs: %+v", ve)
			}
			return nil, fmt.Errorf("load bpf programs: %w", err)
		}
		o.colls = append(o.colls, coll)
	}
	pod, np, sock := o.colls[0], o.colls[1], o.colls[2]
	o.podIngress, o.podEgress = pod.Programs["pod_ingress"], pod.Programs["pod_egress"]
	o.nodePortIngress, o.nodePortEgress = np.Programs["nodeport_ingress"], np.Programs["nodeport_egress"]
	o.connect4, o.sendmsg4 = sock.Programs["sock_connect4"], sock.Programs["sock_sendmsg4"]
	o.recvmsg4, o.getpeername4 = sock.Programs["sock_recvmsg4"], sock.Programs["sock_getpeername4"]
	m := pod.Maps
	o.services, o.backends, o.maglev, o.conntrack = m["services"], m["backends"], m["maglev"], m["conntrack"]
	o.snat, o.sockRev, o.counters, o.drops = m["snat"], m["sock_rev"], m["counters"], m["drops"]
	return o, nil
}

// ipv4Bytes returns the 4 bytes of an IPv4 address, or false.
func ipv4Bytes(ip net.IP) ([4]byte, bool) {
	v4 := ip.To4()
	if v4 == nil {
		return [4]byte{}, false
	}
	return [4]byte(v4), true
}
