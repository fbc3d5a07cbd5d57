package datapath

import (
	"fmt"
	"runtime"

	vnetns "github.com/vishvananda/netns"
)

// nsRunner runs functions in the network namespace New was called in, whatever goroutine
// calls later: ifindexes, tcx attachment and routes are per netns.
type nsRunner struct{ h vnetns.NsHandle }

func currentNS() (nsRunner, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := vnetns.Get()
	if err != nil {
		return nsRunner{}, fmt.Errorf("get current netns: %w", err)
	}
	return nsRunner{h}, nil
}

func (n nsRunner) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if orig.Equal(n.h) {
		runtime.UnlockOSThread()
		return fn()
	}
	if err := vnetns.Set(n.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter datapath netns: %w", err)
	}
	ferr := fn()
	if err := vnetns.Set(orig); err != nil {
		// Keep the thread locked so it exits with the goroutine rather than being reused.
		return fmt.Errorf("return from datapath netns: %w (after: %v)", err, ferr)
	}
	runtime.UnlockOSThread()
	return ferr
}

func (n nsRunner) close() { n.h.Close() }
