package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Links are pinned under PinDir/links so programs stay attached while the agent restarts; a
// new agent loads them and swaps in its programs with an atomic link update.
//
// Pin names: pod_<ifname>_{ingress,egress}, dev_<ifname>_{ingress,egress}, cgroup_<hook>.

func (d *Datapath) linkPath(name string) string { return filepath.Join(d.cfg.PinDir, "links", name) }

// attachTCX attaches (or adopts and updates) prog on ifname in direction at, pinned as name.
func (d *Datapath) attachTCX(ifname string, at ebpf.AttachType, prog *ebpf.Program, name string) error {
	return d.ns.do(func() error {
		nl, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("attach tcx to %s: find device: %w", ifname, err)
		}
		ifindex := nl.Attrs().Index
		path := d.linkPath(name)
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			info, ierr := l.Info()
			if ierr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
				if err := l.Update(prog); err != nil {
					l.Close()
					return fmt.Errorf("attach tcx to %s: replace program: %w", ifname, err)
				}
				d.setLink(name, l)
				return nil
			}
			// Stale: the device was recreated or renamed.
			l.Unpin()
			l.Close()
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
		if err != nil {
			return fmt.Errorf("attach tcx to %s: %w", ifname, err)
		}
		if err := l.Pin(path); err != nil {
			l.Close()
			return fmt.Errorf("attach tcx to %s: pin link: %w", ifname, err)
		}
		d.setLink(name, l)
		return nil
	})
}

func (d *Datapath) setLink(name string, l link.Link) {
	d.linkMu.Lock()
	defer d.linkMu.Unlock()
	if old, ok := d.links[name]; ok && old != l {
		old.Close()
	}
	d.links[name] = l
}

// detachLink removes a pinned link (and so detaches its program).
func (d *Datapath) detachLink(name string) error {
	d.linkMu.Lock()
	l, ok := d.links[name]
	delete(d.links, name)
	d.linkMu.Unlock()
	path := d.linkPath(name)
	if !ok {
		var err error
		l, err = link.LoadPinnedLink(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("load pinned link %s: %w", name, err)
		}
	}
	if err := l.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.Close()
		return fmt.Errorf("unpin link %s: %w", name, err)
	}
	return l.Close()
}

// adoptPodLinks swaps the new programs into every pinned pod link left by a previous agent,
// so pods keep their datapath before the agent re-attaches them; dead ones are unpinned.
func (d *Datapath) adoptPodLinks(o *objects) error {
	entries, err := os.ReadDir(filepath.Join(d.cfg.PinDir, "links"))
	if err != nil {
		return fmt.Errorf("read pinned links: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "pod_") {
			continue
		}
		prog := o.podIngress
		if strings.HasSuffix(name, "_egress") {
			prog = o.podEgress
		}
		l, err := link.LoadPinnedLink(d.linkPath(name), nil)
		if err != nil {
			slog.Warn("datapath: dropping unreadable pinned link", "link", name, "err", err)
			os.Remove(d.linkPath(name))
			continue
		}
		info, err := l.Info()
		if err != nil || info.TCX() == nil || info.TCX().Ifindex == 0 {
			// The veth is gone; the link is defunct.
			l.Unpin()
			l.Close()
			continue
		}
		if err := l.Update(prog); err != nil {
			l.Close()
			return fmt.Errorf("replace program on pinned link %s: %w", name, err)
		}
		d.setLink(name, l)
	}
	return nil
}

var cgroupHooks = []struct {
	name string
	at   ebpf.AttachType
	prog func(*objects) *ebpf.Program
}{
	{"connect4", ebpf.AttachCGroupInet4Connect, func(o *objects) *ebpf.Program { return o.connect4 }},
	{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, func(o *objects) *ebpf.Program { return o.sendmsg4 }},
	{"recvmsg4", ebpf.AttachCGroupUDP4Recvmsg, func(o *objects) *ebpf.Program { return o.recvmsg4 }},
	{"getpeername4", ebpf.AttachCgroupInet4GetPeername, func(o *objects) *ebpf.Program { return o.getpeername4 }},
}

// attachCgroup attaches (or adopts) the socket-LB programs on cfg.CgroupPath; with no
// CgroupPath it removes pinned ones from an earlier configuration.
func (d *Datapath) attachCgroup(o *objects) error {
	var cgid uint64
	if d.cfg.CgroupPath != "" {
		var st unix.Stat_t
		if err := unix.Stat(d.cfg.CgroupPath, &st); err != nil {
			return fmt.Errorf("stat cgroup %s: %w", d.cfg.CgroupPath, err)
		}
		cgid = st.Ino
	}
	for _, h := range cgroupHooks {
		name := "cgroup_" + h.name
		path := d.linkPath(name)
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			info, ierr := l.Info()
			if cgid != 0 && ierr == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == cgid {
				if err := l.Update(h.prog(o)); err != nil {
					l.Close()
					return fmt.Errorf("replace %s program on cgroup %s: %w", h.name, d.cfg.CgroupPath, err)
				}
				d.setLink(name, l)
				continue
			}
			l.Unpin()
			l.Close()
		}
		if cgid == 0 {
			continue
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: d.cfg.CgroupPath, Attach: h.at, Program: h.prog(o)})
		if err != nil {
			return fmt.Errorf("attach %s to cgroup %s: %w", h.name, d.cfg.CgroupPath, err)
		}
		if err := l.Pin(path); err != nil {
			l.Close()
			return fmt.Errorf("pin %s link: %w", h.name, err)
		}
		d.setLink(name, l)
	}
	return nil
}

// attachDevices attaches the NodePort programs to cfg.Devices and removes pinned device
// links for devices no longer configured.
func (d *Datapath) attachDevices(o *objects) error {
	want := map[string]bool{}
	for _, dev := range d.cfg.Devices {
		in, eg := "dev_"+dev+"_ingress", "dev_"+dev+"_egress"
		want[in], want[eg] = true, true
		if err := d.attachTCX(dev, ebpf.AttachTCXIngress, o.nodePortIngress, in); err != nil {
			return err
		}
		if err := d.attachTCX(dev, ebpf.AttachTCXEgress, o.nodePortEgress, eg); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(filepath.Join(d.cfg.PinDir, "links"))
	if err != nil {
		return fmt.Errorf("read pinned links: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "dev_") && !want[e.Name()] {
			if err := d.detachLink(e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}
