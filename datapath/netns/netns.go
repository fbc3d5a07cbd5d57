// Package netns creates, enters and removes named network namespaces.
//
// A namespace is entered with setns on a locked OS thread, never with `ip netns exec`, which
// remounts /sys and hides bpffs. Sockets and links made inside Do stay in the namespace and
// may be used from any goroutine afterwards.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// Dir is where named namespaces are bind-mounted, as iproute2 does.
const Dir = "/run/netns"

// NS is a named network namespace.
type NS struct {
	Name string
	h    vnetns.NsHandle
}

// Create makes the named namespace, or opens it if it already exists.
func Create(name string) (*NS, error) {
	if ns, err := Open(name); err == nil {
		return ns, nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		return nil, fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	h, err := vnetns.NewNamed(name)
	if err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	if err := vnetns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: never hand it back to the runtime.
		runtime.Goexit()
	}
	ns := &NS{Name: name, h: h}
	// A new namespace has lo down; everything here wants it up.
	if err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		ns.Close()
		return nil, fmt.Errorf("bring up lo in %s: %w", name, err)
	}
	return ns, nil
}

// Open opens an existing named namespace.
func Open(name string) (*NS, error) {
	h, err := vnetns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	return &NS{Name: name, h: h}, nil
}

// Path is the namespace's bind mount.
func (ns *NS) Path() string { return filepath.Join(Dir, ns.Name) }

// FD is the namespace's file descriptor, for netlink.LinkSetNsFd and the like.
func (ns *NS) FD() int { return int(ns.h) }

// Do runs fn with the calling goroutine's thread inside the namespace.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := vnetns.Set(ns.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns.Name, err)
	}
	ferr := fn()
	if err := vnetns.Set(orig); err != nil {
		// Leave the thread locked so it dies with this goroutine instead of being reused.
		return errors.Join(ferr, fmt.Errorf("return from netns %s: %w", ns.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Netlink returns a netlink handle bound to the namespace; the caller closes it.
func (ns *NS) Netlink() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(ns.h)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns.Name, err)
	}
	return h, nil
}

// Close releases the handle; the namespace stays.
func (ns *NS) Close() error { return ns.h.Close() }

// Delete closes the handle and removes the named namespace.
func (ns *NS) Delete() error {
	ns.h.Close()
	return Delete(ns.Name)
}

// Delete removes a named namespace; a missing one is not an error.
func Delete(name string) error {
	if _, err := os.Stat(filepath.Join(Dir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := vnetns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}
