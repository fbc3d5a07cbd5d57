package datapath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Datapath owns skiff's loaded BPF programs, their pinned maps and links, and the Go-side
// view of what the maps hold.
type Datapath struct {
	translator
	ns   nsRunner
	objs *objects

	linkMu sync.Mutex
	links  map[string]link.Link

	mu    sync.Mutex // serialises map programming
	state *state
	batch *batch // non-nil during Sync

	stopGC context.CancelFunc
	gcDone chan struct{}
}

// New loads the programs, creating or adopting the pinned maps and links under cfg.PinDir,
// attaches the NodePort programs to cfg.Devices and socket LB to cfg.CgroupPath, and installs
// the unreachable route for the service CIDR, all in the calling goroutine's network namespace.
// Programs left attached by a previous agent are replaced atomically, never detached.
func New(cfg Config) (*Datapath, error) {
	c, pr, cidr, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ensureBPFFS(c.PinDir); err != nil {
		return nil, err
	}
	ns, err := currentNS()
	if err != nil {
		return nil, err
	}
	d := &Datapath{translator: translator{cfg: c, nodePort: pr}, ns: ns, links: map[string]link.Link{}}
	o, err := loadObjects(c)
	if err != nil {
		ns.close()
		return nil, err
	}
	d.objs = o
	fail := func(err error) (*Datapath, error) {
		d.closeHandles()
		return nil, err
	}
	if d.state, err = adoptState(o); err != nil {
		return fail(err)
	}
	if err := d.adoptPodLinks(o); err != nil {
		return fail(err)
	}
	if err := d.attachDevices(o); err != nil {
		return fail(err)
	}
	if err := d.attachCgroup(o); err != nil {
		return fail(err)
	}
	if err := d.ensureUnreachableRoute(cidr); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stopGC, d.gcDone = cancel, make(chan struct{})
	go d.runGC(ctx)
	slog.Info("datapath ready", "pinDir", c.PinDir, "devices", c.Devices, "cgroup", c.CgroupPath,
		"adoptedFrontends", len(d.state.adopted), "adoptedBackends", len(d.state.adoptedBackends))
	return d, nil
}

// AttachPod attaches the ClusterIP programs to a pod's host-side veth (in New's netns).
func (d *Datapath) AttachPod(ifname string) error {
	if ifname == "" {
		return errors.New("attach pod: empty interface name")
	}
	if err := d.attachTCX(ifname, ebpf.AttachTCXIngress, d.objs.podIngress, "pod_"+ifname+"_ingress"); err != nil {
		return err
	}
	return d.attachTCX(ifname, ebpf.AttachTCXEgress, d.objs.podEgress, "pod_"+ifname+"_egress")
}

// DetachPod removes the programs from a pod's veth; a veth that is already gone is fine.
func (d *Datapath) DetachPod(ifname string) error {
	return errors.Join(d.detachLink("pod_"+ifname+"_ingress"), d.detachLink("pod_"+ifname+"_egress"))
}

// Close releases the agent's handles. Maps and links stay pinned, so traffic keeps flowing
// until the next agent adopts them.
func (d *Datapath) Close() error {
	if d.stopGC != nil {
		d.stopGC()
		<-d.gcDone
		d.stopGC = nil
	}
	d.closeHandles()
	return nil
}

// Remove detaches everything and deletes the pin dir: the node loses service translation.
func (d *Datapath) Remove() error {
	d.linkMu.Lock()
	for name, l := range d.links {
		l.Unpin()
		l.Close()
		delete(d.links, name)
	}
	d.linkMu.Unlock()
	d.Close()
	return os.RemoveAll(d.cfg.PinDir)
}

func (d *Datapath) closeHandles() {
	d.linkMu.Lock()
	for name, l := range d.links {
		l.Close()
		delete(d.links, name)
	}
	d.linkMu.Unlock()
	if d.objs != nil {
		d.objs.close()
		d.objs = nil
	}
	d.ns.close()
}

// PinDir is where the maps and links are pinned.
func (d *Datapath) PinDir() string { return d.cfg.PinDir }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
