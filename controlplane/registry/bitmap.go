package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiffnet/skiff/controlplane/storage"
)

// Errors of a Range.
var (
	ErrAllocated  = errors.New("provided value is already allocated")
	ErrOutOfRange = errors.New("provided value is not in the valid range")
	ErrFull       = errors.New("range is full")
)

// Range is a bitmap of allocated offsets [0, size) kept in etcd as a RangeAllocation at key.
// Every change is a GuaranteedUpdate of that key, so two API servers never hand out the same
// offset; the mutex serializes this server's own writers so they do not fight over the key.
type Range struct {
	store storage.Interface
	key   string
	name  string // "10.96.0.0/12" or "30000-32767", stored in RangeAllocation.Range
	size  int

	mu   sync.Mutex
	next int // where the next dynamic scan starts, so a freed offset is not reused at once
}

// NewRange makes a Range; call Init before use.
func NewRange(store storage.Interface, key, name string, size int) *Range {
	return &Range{store: store, key: key, name: name, size: size}
}

// Init creates the stored bitmap when it does not exist yet.
func (r *Range) Init(ctx context.Context) error {
	ra := &corev1.RangeAllocation{ObjectMeta: metav1.ObjectMeta{Name: r.name}, Range: r.name}
	err := r.store.Create(ctx, r.key, ra, &corev1.RangeAllocation{}, 0)
	if err != nil && !storage.IsExists(err) {
		return fmt.Errorf("create range %s: %w", r.key, err)
	}
	return nil
}

func (r *Range) update(ctx context.Context, fn func(bits []byte) ([]byte, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store.GuaranteedUpdate(ctx, r.key, &corev1.RangeAllocation{}, nil, func(cur runtime.Object) (runtime.Object, error) {
		ra := cur.(*corev1.RangeAllocation).DeepCopy()
		bits, err := fn(ra.Data)
		if err != nil {
			return nil, err
		}
		ra.Data = trim(bits)
		ra.Range = r.name
		return ra, nil
	})
}

func get(bits []byte, i int) bool { return i/8 < len(bits) && bits[i/8]&(1<<(i%8)) != 0 }

func set(bits []byte, i int, v bool) []byte {
	for len(bits) <= i/8 {
		bits = append(bits, 0)
	}
	if v {
		bits[i/8] |= 1 << (i % 8)
	} else {
		bits[i/8] &^= 1 << (i % 8)
	}
	return bits
}

func trim(bits []byte) []byte {
	for len(bits) > 0 && bits[len(bits)-1] == 0 {
		bits = bits[:len(bits)-1]
	}
	return bits
}

// Allocate marks offset i as used.
func (r *Range) Allocate(ctx context.Context, i int) error {
	if i < 0 || i >= r.size {
		return ErrOutOfRange
	}
	return r.update(ctx, func(bits []byte) ([]byte, error) {
		if get(bits, i) {
			return nil, ErrAllocated
		}
		return set(bits, i, true), nil
	})
}

// AllocateNext marks and returns a free offset for which skip is false.
func (r *Range) AllocateNext(ctx context.Context, skip func(int) bool) (int, error) {
	got := -1
	err := r.update(ctx, func(bits []byte) ([]byte, error) {
		for n := 0; n < r.size; n++ {
			i := (r.next + n) % r.size
			if skip(i) || get(bits, i) {
				continue
			}
			got = i
			r.next = i + 1 // under r.mu
			return set(bits, i, true), nil
		}
		return nil, ErrFull
	})
	if err != nil {
		return -1, err
	}
	return got, nil
}

// Release frees offset i (out-of-range offsets are ignored).
func (r *Range) Release(ctx context.Context, i int) error {
	if i < 0 || i >= r.size {
		return nil
	}
	return r.update(ctx, func(bits []byte) ([]byte, error) { return set(bits, i, false), nil })
}

// Has reports whether offset i is allocated.
func (r *Range) Has(ctx context.Context, i int) (bool, error) {
	ra := &corev1.RangeAllocation{}
	if err := r.store.Get(ctx, r.key, ra); err != nil {
		return false, err
	}
	return get(ra.Data, i), nil
}

// Reset replaces the bitmap with exactly the given offsets (the repair at start-up).
func (r *Range) Reset(ctx context.Context, used []int) error {
	return r.update(ctx, func([]byte) ([]byte, error) {
		var bits []byte
		for _, i := range used {
			if i >= 0 && i < r.size {
				bits = set(bits, i, true)
			}
		}
		return bits, nil
	})
}
