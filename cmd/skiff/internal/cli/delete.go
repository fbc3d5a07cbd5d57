package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeleteOptions are delete's flags.
type DeleteOptions struct {
	Files          []string
	Recursive      bool
	Selector       string
	All            bool
	Wait           bool
	Timeout        time.Duration
	IgnoreNotFound bool
	GracePeriod    int // -1: the object's default
}

// Delete deletes TYPE NAME..., the objects of -f, or TYPE -l SELECTOR, and with Wait polls until
// they are gone, exiting 1 on timeout.
func (f *Factory) Delete(ctx context.Context, args []string, o DeleteOptions) error {
	var refs []objectRef
	var err error
	switch {
	case len(o.Files) > 0:
		if len(args) > 0 {
			return errors.New("give either -f FILE or TYPE NAME..., not both")
		}
		refs, err = f.manifestRefs(o.Files, o.Recursive)
	case o.Selector != "" || o.All:
		if len(args) != 1 {
			return errors.New("-l SELECTOR needs exactly one resource type: skiff delete TYPE -l SELECTOR")
		}
		refs, err = f.selectRefs(ctx, args[0], o.Selector)
	case len(args) == 1:
		if _, err := f.ResolveResource(args[0]); err == nil {
			return fmt.Errorf("name what to delete: skiff delete %s NAME, or -l SELECTOR, or --all", args[0])
		}
		refs, err = f.resolveRefs(args)
	default:
		refs, err = f.resolveRefs(args)
	}
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		fmt.Fprintln(f.ErrOut, "No resources found")
		return nil
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	var opts metav1.DeleteOptions
	if o.GracePeriod >= 0 {
		g := int64(o.GracePeriod)
		opts.GracePeriodSeconds = &g
	}
	bg := metav1.DeletePropagationBackground
	opts.PropagationPolicy = &bg
	var deleted []objectRef
	failed := 0
	for _, r := range refs {
		err := resourceClient(dyn, r.res, r.ns).Delete(ctx, r.name, opts)
		switch {
		case apierrors.IsNotFound(err) && o.IgnoreNotFound:
		case err != nil:
			failed++
			fmt.Fprintln(f.ErrOut, "error:", Explain(fmt.Errorf("delete %s: %w", r, err), f.Host()))
		default:
			fmt.Fprintf(f.Out, "%s deleted\n", r)
			deleted = append(deleted, r)
		}
	}
	if o.Wait && len(deleted) > 0 {
		if err := f.waitGone(ctx, deleted, o.Timeout); err != nil {
			return err
		}
	}
	if failed > 0 {
		return ErrSilent{Code: 1}
	}
	return nil
}

// waitGone polls until every object is gone, printing what it still waits for.
func (f *Factory) waitGone(ctx context.Context, refs []objectRef, timeout time.Duration) error {
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	pending := refs
	lastReport := time.Time{}
	for {
		var still []objectRef
		for _, r := range pending {
			_, err := resourceClient(dyn, r.res, r.ns).Get(ctx, r.name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				fmt.Fprintf(f.Out, "%s gone\n", r)
			case err != nil && ctx.Err() == nil:
				return fmt.Errorf("wait for %s: %w", r, err)
			default:
				still = append(still, r)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return &ExitError{Code: 1, Err: fmt.Errorf("timed out after %s waiting for %d object(s) to be deleted, e.g. %s (finalizers or terminating pods can hold them)", timeout, len(pending), pending[0])}
		}
		if time.Since(lastReport) >= 5*time.Second {
			fmt.Fprintf(f.ErrOut, "waiting for %d object(s) to be deleted: %s ...\n", len(pending), pending[0])
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return &ExitError{Code: 130, Err: errors.New("interrupted while waiting for deletion")}
		case <-time.After(500 * time.Millisecond):
		}
	}
}
