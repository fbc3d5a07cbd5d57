package storage

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// store is the etcd3 implementation of Interface.
type store struct {
	client *clientv3.Client
	codec  runtime.Codec
	leases *leaseManager
}

// New returns the storage Interface over an etcd client. codec is usually DefaultCodec(); it
// must be able to decode with a nil target (watch events of any kind).
func New(client *clientv3.Client, codec runtime.Codec) Interface {
	return &store{client: client, codec: codec, leases: newLeaseManager(client)}
}

func checkKey(key string) error {
	if key == "" || key[0] != '/' || key[len(key)-1] == '/' {
		return newErr(ErrCodeBadRequest, key, 0, nil, "storage key %q must start with / and must not end with / (like /registry/pods/default/web-1)", key)
	}
	return nil
}

// encode serializes obj for storage with an empty resourceVersion: the revision lives in etcd,
// not in the value. The caller's object is restored before returning.
func (s *store) encode(key string, obj runtime.Object) ([]byte, error) {
	if obj == nil {
		return nil, newErr(ErrCodeInvalidObj, key, 0, nil, "nil object for key %q", key)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, newErr(ErrCodeInvalidObj, key, 0, err, "object %T for key %q has no metadata", obj, key)
	}
	if rv := m.GetResourceVersion(); rv != "" {
		m.SetResourceVersion("")
		defer m.SetResourceVersion(rv)
	}
	var buf bytes.Buffer
	if err := s.codec.Encode(obj, &buf); err != nil {
		return nil, newErr(ErrCodeInvalidObj, key, 0, err, "encode %T for key %q", obj, key)
	}
	return buf.Bytes(), nil
}

// decodeInto fills out (reset to its zero value first, so no stale fields survive) from data
// and stamps it with rev.
func (s *store) decodeInto(key string, data []byte, out runtime.Object, rev int64) error {
	if out == nil {
		return newErr(ErrCodeInvalidObj, key, rev, nil, "nil output object for key %q", key)
	}
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return newErr(ErrCodeInvalidObj, key, rev, nil, "output object for key %q must be a non-nil pointer, got %T", key, out)
	}
	v.Elem().Set(reflect.Zero(v.Elem().Type()))
	if err := runtime.DecodeInto(s.codec, data, out); err != nil {
		return newErr(ErrCodeInvalidObj, key, rev, err, "decode %q into %T", key, out)
	}
	return setRV(key, out, rev)
}

// decodeNew decodes data into a new object of the kind the data names.
func (s *store) decodeNew(key string, data []byte, rev int64) (runtime.Object, error) {
	// The key says the kind (/registry/pods/...): decoding into a typed object takes the
	// codec's one-pass path, half the cost of finding the kind in the data first (watch
	// events are decoded once per watcher). Any surprise takes the general path.
	if c, ok := s.codec.(*jsonCodec); ok {
		if gvk, ok := kindForKey(key); ok {
			if obj, err := c.scheme.New(gvk); err == nil {
				if err := runtime.DecodeInto(c, data, obj); err == nil {
					return obj, setRV(key, obj, rev)
				}
			}
		}
	}
	obj, err := runtime.Decode(s.codec, data)
	if err != nil {
		return nil, newErr(ErrCodeInvalidObj, key, rev, err, "decode %q", key)
	}
	return obj, setRV(key, obj, rev)
}

func setRV(key string, obj runtime.Object, rev int64) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return newErr(ErrCodeInvalidObj, key, rev, err, "object %T for key %q has no metadata", obj, key)
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	return nil
}

// newLike returns a new zero object of the same type as obj.
func newLike(obj runtime.Object) runtime.Object {
	return reflect.New(reflect.TypeOf(obj).Elem()).Interface().(runtime.Object)
}

func (s *store) Create(ctx context.Context, key string, obj, out runtime.Object, ttl int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if ttl < 0 {
		return newErr(ErrCodeBadRequest, key, 0, nil, "ttl for key %q must be >= 0 seconds, got %d", key, ttl)
	}
	data, err := s.encode(key, obj)
	if err != nil {
		return err
	}
	var opts []clientv3.OpOption
	if ttl > 0 {
		id, err := s.leases.get(ctx, ttl)
		if err != nil {
			return fmt.Errorf("grant %ds lease for %q: %w", ttl, key, err)
		}
		opts = append(opts, clientv3.WithLease(id))
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data), opts...)).
		Commit()
	if err != nil {
		return fmt.Errorf("create %q: %w", key, err)
	}
	if !resp.Succeeded {
		return errExists(key, 0)
	}
	if out == nil {
		return nil
	}
	return s.decodeInto(key, data, out, resp.Header.Revision)
}

func (s *store) Get(ctx context.Context, key string, out runtime.Object) error {
	if err := checkKey(key); err != nil {
		return err
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %q: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return errNotFound(key)
	}
	kv := resp.Kvs[0]
	return s.decodeInto(key, kv.Value, out, kv.ModRevision)
}

func (s *store) Count(ctx context.Context, prefix string) (int64, error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", prefix, err)
	}
	return resp.Count, nil
}

// checkPreconditions compares precond with the stored object (whose resourceVersion is set).
func checkPreconditions(key string, precond *Preconditions, current runtime.Object) error {
	if precond == nil {
		return nil
	}
	m, err := meta.Accessor(current)
	if err != nil {
		return newErr(ErrCodeInvalidObj, key, 0, err, "object %T for key %q has no metadata", current, key)
	}
	if precond.UID != nil && *precond.UID != m.GetUID() {
		return newErr(ErrCodeConflict, key, 0, nil,
			"precondition failed for %q: UID in precondition %q, UID in object %q (the object was deleted and re-created)", key, *precond.UID, m.GetUID())
	}
	if precond.ResourceVersion != nil && *precond.ResourceVersion != m.GetResourceVersion() {
		return newErr(ErrCodeConflict, key, 0, nil,
			"precondition failed for %q: resourceVersion in precondition %s, in object %s (the object has been modified; read it again and retry)", key, *precond.ResourceVersion, m.GetResourceVersion())
	}
	return nil
}

// readForWrite reads key for a compare-and-swap. The first read is serializable: it needs
// no ReadIndex round through raft, which under write load waits for the raft loop (and its
// WAL fsync) and made every update cost two write latencies. A stale answer is harmless
// when the write then succeeds, because the transaction compares the ModRevision; every
// other outcome (not found, a failed precondition, an update function's error, nothing to
// change) is confirmed with a linearizable read before it is returned (reread).
type readForWrite struct {
	s     *store
	key   string
	kv    *mvccpb.KeyValue
	fresh bool // kv is known current: a linearizable read or a transaction's answer
}

func (r *readForWrite) read(ctx context.Context, serializable bool) error {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := r.s.client.Get(ctx, r.key, opts...)
	if err != nil {
		return fmt.Errorf("get %q for update: %w", r.key, err)
	}
	r.fresh = !serializable
	if len(resp.Kvs) == 0 {
		if serializable {
			return r.read(ctx, false)
		}
		return errNotFound(r.key)
	}
	r.kv = resp.Kvs[0]
	return nil
}

// reread replaces a possibly stale kv with a linearizable read; it reports false when kv
// was already current (the caller then returns its outcome).
func (r *readForWrite) reread(ctx context.Context) (bool, error) {
	if r.fresh {
		return false, nil
	}
	return true, r.read(ctx, false)
}

// txnAnswer takes the current value from a failed transaction's Else branch.
func (r *readForWrite) txnAnswer(resp *clientv3.TxnResponse) error {
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return errNotFound(r.key)
	}
	r.kv, r.fresh = kvs[0], true
	return nil
}

func (s *store) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, precond *Preconditions, tryUpdate UpdateFunc) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if out == nil || tryUpdate == nil {
		return newErr(ErrCodeInvalidObj, key, 0, nil, "GuaranteedUpdate of %q needs an output object and an update function", key)
	}
	r := &readForWrite{s: s, key: key}
	if err := r.read(ctx, true); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("update %q: %w", key, err)
		}
		kv := r.kv
		current := newLike(out)
		if err := s.decodeInto(key, kv.Value, current, kv.ModRevision); err != nil {
			return err
		}
		err := checkPreconditions(key, precond, current)
		var updated runtime.Object
		if err == nil {
			updated, err = tryUpdate(current)
		}
		var data []byte
		if err == nil {
			data, err = s.encode(key, updated)
		}
		unchanged := err == nil && bytes.Equal(data, kv.Value)
		if err != nil || unchanged {
			if again, rerr := r.reread(ctx); rerr != nil {
				return rerr
			} else if again {
				continue
			}
			if err != nil {
				return err
			}
			// Nothing changed: no write, no new revision, like Kubernetes.
			return s.decodeInto(key, kv.Value, out, kv.ModRevision)
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, string(data), clientv3.WithIgnoreLease())).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("update %q: %w", key, err)
		}
		if resp.Succeeded {
			return s.decodeInto(key, data, out, resp.Header.Revision)
		}
		// Another writer got there first (or the first read was stale): retry on what is there.
		if err := r.txnAnswer(resp); err != nil {
			return err
		}
	}
}

func (s *store) Delete(ctx context.Context, key string, out runtime.Object, precond *Preconditions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if out == nil {
		return newErr(ErrCodeInvalidObj, key, 0, nil, "Delete of %q needs an output object", key)
	}
	r := &readForWrite{s: s, key: key}
	if err := r.read(ctx, true); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete %q: %w", key, err)
		}
		kv := r.kv
		if precond != nil {
			current := newLike(out)
			if err := s.decodeInto(key, kv.Value, current, kv.ModRevision); err != nil {
				return err
			}
			if err := checkPreconditions(key, precond, current); err != nil {
				if again, rerr := r.reread(ctx); rerr != nil {
					return rerr
				} else if again {
					continue
				}
				return err
			}
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("delete %q: %w", key, err)
		}
		if resp.Succeeded {
			// The last state, stamped with the revision of the delete (as watch DELETED events are).
			return s.decodeInto(key, kv.Value, out, resp.Header.Revision)
		}
		if err := r.txnAnswer(resp); err != nil {
			return err
		}
	}
}

// Compact discards etcd history before rev, as the Kubernetes API server's compactor does.
// It is not part of Interface; reach it with a type assertion to
// interface{ Compact(context.Context, int64) error }.
func (s *store) Compact(ctx context.Context, rev int64) error {
	if _, err := s.client.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact etcd to revision %d: %w", rev, err)
	}
	return nil
}
