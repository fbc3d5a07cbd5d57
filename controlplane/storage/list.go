package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// maxFetch bounds one etcd range read while List filters by predicate.
const maxFetch = 10000

// continueToken is what a continue string carries: the revision the first page read at and
// the next key, relative to the listed prefix so a token cannot reach outside it.
type continueToken struct {
	Version string `json:"v"`
	RV      int64  `json:"rv"`
	Start   string `json:"start"`
}

const continueVersion = "skiff.storage/v1"

func encodeContinue(rel string, rv int64) (string, error) {
	b, err := json.Marshal(continueToken{Version: continueVersion, RV: rv, Start: rel})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func decodeContinue(tok, prefix string) (start string, rv int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", 0, newErr(ErrCodeBadRequest, prefix, 0, nil, "continue token is not valid (not base64url): pass the metadata.continue of the previous page unchanged")
	}
	var t continueToken
	if err := json.Unmarshal(b, &t); err != nil || t.Version != continueVersion || t.RV <= 0 || t.Start == "" {
		return "", 0, newErr(ErrCodeBadRequest, prefix, 0, nil, "continue token is not valid: pass the metadata.continue of the previous page unchanged")
	}
	return prefix + t.Start, t.RV, nil
}

// ParseResourceVersion turns a resourceVersion string into an etcd revision ("" and "0" are 0).
func ParseResourceVersion(rv string) (int64, error) {
	if rv == "" || rv == "0" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, newErr(ErrCodeBadRequest, "", 0, nil, "resourceVersion %q is not valid: use a resourceVersion returned by the server", rv)
	}
	return n, nil
}

// readErr classifies an etcd read error.
func readErr(err error, what string, rev int64) error {
	switch {
	case err == rpctypes.ErrCompacted:
		return errGone(what, rev)
	case err == rpctypes.ErrFutureRev:
		return newErr(ErrCodeTooLargeResourceVersion, what, rev, nil, "resourceVersion %d of %q is newer than etcd's current revision; retry later", rev, what)
	}
	return fmt.Errorf("list %q: %w", what, err)
}

// parallelDecodeMin is the chunk size from which List decodes on every CPU.
const parallelDecodeMin = 256

// decodeKVs decodes kvs[i] into objs[i], spreading big chunks over GOMAXPROCS goroutines:
// JSON decoding is most of the cost of a large List.
func (s *store) decodeKVs(kvs []*mvccpb.KeyValue, objs []runtime.Object) error {
	workers := goruntime.GOMAXPROCS(0)
	if len(kvs) < parallelDecodeMin || workers < 2 {
		for i, kv := range kvs {
			if err := s.decodeInto(string(kv.Key), kv.Value, objs[i], kv.ModRevision); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	per := (len(kvs) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*per, min((w+1)*per, len(kvs))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				kv := kvs[i]
				if err := s.decodeInto(string(kv.Key), kv.Value, objs[i], kv.ModRevision); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *store) List(ctx context.Context, prefix string, opts ListOptions, listObj runtime.Object) error {
	if prefix == "" || prefix[0] != '/' {
		return newErr(ErrCodeBadRequest, prefix, 0, nil, "list prefix %q must start with / (like /registry/pods/)", prefix)
	}
	itemsPtr, err := meta.GetItemsPtr(listObj)
	if err != nil {
		return newErr(ErrCodeInvalidObj, prefix, 0, err, "%T is not a list", listObj)
	}
	items := reflect.ValueOf(itemsPtr).Elem()
	if items.Kind() != reflect.Slice {
		return newErr(ErrCodeInvalidObj, prefix, 0, nil, "items of %T are not a slice", listObj)
	}
	elemType := items.Type().Elem()
	elemIsPtr := elemType.Kind() == reflect.Pointer
	if elemIsPtr {
		elemType = elemType.Elem()
	}
	if _, ok := reflect.New(elemType).Interface().(runtime.Object); !ok {
		return newErr(ErrCodeInvalidObj, prefix, 0, nil, "items of %T are not objects", listObj)
	}
	listMeta, err := meta.ListAccessor(listObj)
	if err != nil {
		return newErr(ErrCodeInvalidObj, prefix, 0, err, "%T has no list metadata", listObj)
	}

	rev, err := ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return err
	}
	single := !strings.HasSuffix(prefix, "/")
	start := prefix
	if opts.Continue != "" {
		if single {
			return newErr(ErrCodeBadRequest, prefix, 0, nil, "continue is only valid when listing a prefix ending in /")
		}
		var crv int64
		start, crv, err = decodeContinue(opts.Continue, prefix)
		if err != nil {
			return err
		}
		if rev != 0 && rev != crv {
			return newErr(ErrCodeBadRequest, prefix, rev, nil, "resourceVersion %d and continue (which reads at %d) cannot both be set: drop resourceVersion", rev, crv)
		}
		rev = crv
	}

	pred := opts.Predicate
	filter := !pred.Empty()
	limit := opts.Limit
	if limit < 0 {
		return newErr(ErrCodeBadRequest, prefix, 0, nil, "limit must be >= 0, got %d", limit)
	}
	fetch := limit
	var ropts []clientv3.OpOption
	if !single {
		ropts = append(ropts, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)))
	}

	items.SetLen(0)
	var (
		hasMore   bool
		lastKey   string
		remaining *int64
		pages     int
	)
	for {
		o := ropts
		if rev > 0 {
			o = append(o, clientv3.WithRev(rev))
		}
		if fetch > 0 {
			o = append(o, clientv3.WithLimit(fetch))
		}
		resp, err := s.client.Get(ctx, start, o...)
		if err != nil {
			return readErr(err, prefix, rev)
		}
		pages++
		if rev == 0 {
			// Every later page reads at this revision, so the list is one consistent snapshot.
			rev = resp.Header.Revision
		}
		if need := items.Len() + len(resp.Kvs); need > items.Cap() {
			grown := reflect.MakeSlice(items.Type(), items.Len(), need)
			reflect.Copy(grown, items)
			items.Set(grown)
		}
		// Decode the whole chunk first (in parallel when it is big), then filter in key order.
		n0 := items.Len()
		items.SetLen(n0 + len(resp.Kvs))
		objs := make([]runtime.Object, len(resp.Kvs))
		for i := range resp.Kvs {
			if elemIsPtr {
				p := reflect.New(elemType)
				items.Index(n0 + i).Set(p)
				objs[i] = p.Interface().(runtime.Object)
			} else {
				objs[i] = items.Index(n0 + i).Addr().Interface().(runtime.Object)
			}
		}
		if err := s.decodeKVs(resp.Kvs, objs); err != nil {
			return err
		}
		n := n0
		full := false
		for i, kv := range resp.Kvs {
			if filter {
				ok, err := pred.Matches(objs[i])
				if err != nil {
					return newErr(ErrCodeInvalidObj, string(kv.Key), kv.ModRevision, err, "select %q", kv.Key)
				}
				if !ok {
					continue
				}
			}
			if n != n0+i {
				items.Index(n).Set(items.Index(n0 + i))
			}
			n++
			if limit > 0 && int64(n) == limit {
				full = true
				lastKey = string(kv.Key)
				hasMore = i < len(resp.Kvs)-1 || resp.More
				if !filter && pages == 1 {
					r := resp.Count - int64(i+1)
					remaining = &r
				}
				break
			}
		}
		// Zero what was decoded but not kept, so the list holds no hidden references.
		zero := reflect.Zero(items.Type().Elem())
		for j := n; j < items.Len(); j++ {
			items.Index(j).Set(zero)
		}
		items.SetLen(n)
		if full || !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		if fetch < maxFetch {
			fetch = min(fetch*2, maxFetch)
		}
	}

	listMeta.SetResourceVersion(strconv.FormatInt(rev, 10))
	listMeta.SetContinue("")
	listMeta.SetRemainingItemCount(nil)
	if hasMore {
		tok, err := encodeContinue(strings.TrimPrefix(lastKey, prefix)+"\x00", rev)
		if err != nil {
			return fmt.Errorf("list %q: encode continue: %w", prefix, err)
		}
		listMeta.SetContinue(tok)
		listMeta.SetRemainingItemCount(remaining)
	}
	return nil
}
