package storage

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactRevKey is the key Kubernetes API servers use to agree on compactions; sharing it
// means skiff and kube-apiserver never compact the same etcd twice in one interval.
const compactRevKey = "compact_rev_key"

// CompactInterval is how often the compactor started for an external etcd discards history
// older than one interval (Kubernetes' default).
const CompactInterval = 5 * time.Minute

// runCompactor compacts etcd every interval to the revision seen at the previous tick, so at
// least one interval of history stays for watches to resume from. Several servers can run it
// against one cluster: a transaction on compactRevKey lets one of them compact per interval.
func runCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration) {
	var version, rev int64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var err error
		version, rev, err = compactOnce(ctx, client, version, rev)
		if err != nil && ctx.Err() == nil {
			slog.Warn("etcd compaction", "revision", rev, "err", err)
		}
	}
}

// compactOnce claims this interval's compaction by bumping compactRevKey's version from
// version, and if it won, compacts to rev (the revision seen an interval ago). It returns
// the version and current revision to use next time.
func compactOnce(ctx context.Context, client *clientv3.Client, version, rev int64) (int64, int64, error) {
	resp, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(compactRevKey), "=", version)).
		Then(clientv3.OpPut(compactRevKey, strconv.FormatInt(rev, 10))).
		Else(clientv3.OpGet(compactRevKey)).
		Commit()
	if err != nil {
		return version, rev, err
	}
	cur := resp.Header.Revision
	if !resp.Succeeded {
		// Another server compacted in this interval; follow its count.
		return resp.Responses[0].GetResponseRange().Kvs[0].Version, cur, nil
	}
	if rev == 0 {
		return version + 1, cur, nil // nothing seen yet: no compaction on the first tick
	}
	if _, err := client.Compact(ctx, rev); err != nil && err != rpctypes.ErrCompacted {
		return version + 1, cur, err
	}
	return version + 1, cur, nil
}
