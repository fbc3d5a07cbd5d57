package storage

import (
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	kjson "sigs.k8s.io/json"
)

// DefaultCodec stores objects as JSON with apiVersion and kind set, using the client-go scheme
// (every built-in Kubernetes type). Decoding into a typed object (runtime.DecodeInto) fills
// that object, and fails if the data holds a different kind; decoding with a nil target
// creates the typed object the data names. Decoding is not strict: unknown fields written by
// a newer version are ignored rather than failing reads.
func DefaultCodec() runtime.Codec {
	return NewJSONCodec(scheme.Scheme)
}

// NewJSONCodec is DefaultCodec over another scheme (for tests or extra types).
func NewJSONCodec(s *runtime.Scheme) runtime.Codec {
	return &jsonCodec{
		scheme:     s,
		serializer: json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{}),
	}
}

type jsonCodec struct {
	scheme     *runtime.Scheme
	serializer *json.Serializer
}

func (c *jsonCodec) Identifier() runtime.Identifier { return "skiff-storage-json" }

// Encode writes obj with its apiVersion/kind. The caller's object is not modified: when its
// TypeMeta is empty or wrong, a copy carries the kind.
func (c *jsonCodec) Encode(obj runtime.Object, w io.Writer) error {
	gvks, _, err := c.scheme.ObjectKinds(obj)
	if err != nil {
		return fmt.Errorf("encode %T: %w", obj, err)
	}
	want := gvks[0]
	have := obj.GetObjectKind().GroupVersionKind()
	for _, g := range gvks {
		if g == have {
			want = g
			break
		}
	}
	if have != want {
		obj = obj.DeepCopyObject()
		obj.GetObjectKind().SetGroupVersionKind(want)
	}
	return c.serializer.Encode(obj, w)
}

func (c *jsonCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if into != nil && defaults == nil {
		// Fast path for the common case, a typed target and data of its kind: one pass over the
		// data instead of two (the serializer first parses apiVersion/kind on their own, which
		// costs a quarter of a List).
		if gvks, unversioned, err := c.scheme.ObjectKinds(into); err == nil && !unversioned {
			if err := kjson.UnmarshalCaseSensitivePreserveInts(data, into); err == nil {
				got := into.GetObjectKind().GroupVersionKind()
				for _, g := range gvks {
					if g == got {
						return into, &got, nil
					}
				}
			}
			// Another kind, no kind, or bad data: the serializer gives the precise answer.
		}
	}
	return c.serializer.Decode(data, defaults, into)
}
