package storage

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestCompactOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := OpenEtcd(ctx, EtcdConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := e.Client
	put := func() int64 {
		resp, err := c.Put(ctx, "/registry/x", "v")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	put()
	// First tick: remember the revision, compact nothing.
	v, rev, err := compactOnce(ctx, c, 0, 0)
	if err != nil || v != 1 || rev == 0 {
		t.Fatalf("first compactOnce = %d, %d, %v", v, rev, err)
	}
	put()
	// A second server with a stale view loses the race and learns the version.
	if v2, _, err := compactOnce(ctx, c, 0, 0); err != nil || v2 != 1 {
		t.Fatalf("competing compactOnce = %d, %v; want version 1", v2, err)
	}
	// Next tick: compact to the revision of the previous tick.
	v, _, err = compactOnce(ctx, c, v, rev)
	if err != nil || v != 2 {
		t.Fatalf("second compactOnce = %d, %v", v, err)
	}
	if _, err := c.Get(ctx, "/registry/x", clientv3.WithRev(rev-1)); err != rpctypes.ErrCompacted {
		t.Fatalf("read before the compacted revision: %v, want ErrCompacted", err)
	}
}
