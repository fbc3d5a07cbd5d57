package storage

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseManager shares one etcd lease between objects created with similar TTLs, as the
// Kubernetes API server does: a lease per Event would flood etcd's lessor. A lease is reused
// while it outlives the requested TTL by no more than 5% of that TTL (at most a minute), so
// an object lives at most that much longer than asked.
type leaseManager struct {
	client *clientv3.Client

	mu         sync.Mutex
	prevID     clientv3.LeaseID
	prevExpiry time.Time
	prevCount  int
}

const (
	leaseReusePercent  = 0.05
	leaseReuseMax      = 60 // seconds
	leaseMaxAttachedTo = 1000
)

func newLeaseManager(c *clientv3.Client) *leaseManager { return &leaseManager{client: c} }

func (l *leaseManager) get(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	reuse := min(int64(leaseReusePercent*float64(ttl)), leaseReuseMax)
	valid := now.Add(time.Duration(ttl) * time.Second).Before(l.prevExpiry)
	sufficient := now.Add(time.Duration(ttl+reuse) * time.Second).After(l.prevExpiry)
	if l.prevID != 0 && valid && sufficient && l.prevCount < leaseMaxAttachedTo {
		l.prevCount++
		return l.prevID, nil
	}
	ttl += reuse
	resp, err := l.client.Grant(ctx, ttl)
	if err != nil {
		return 0, err
	}
	l.prevID, l.prevExpiry, l.prevCount = resp.ID, now.Add(time.Duration(ttl)*time.Second), 1
	return resp.ID, nil
}
