package apiserver

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
)

// serializerDecode is decodeBytes without the one-pass JSON fast path.
func serializerDecode(body []byte, r *resource) (any, error) {
	info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	want := r.gvk()
	obj, gvk, err := info.StrictSerializer.Decode(body, &want, r.newObj())
	if err != nil || gvk == nil || *gvk != r.gvk() {
		return nil, err
	}
	return obj, nil
}

// FuzzDecodeJSONFast: whatever the one-pass decode accepts, the serializer accepts too and
// decodes to the same object.
func FuzzDecodeJSONFast(f *testing.F) {
	for _, s := range []string{
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","resources":{"requests":{"cpu":"100m"}}}]}}`,
		`{"metadata":{"name":"p"}}`,
		`{"kind":"Pod"}`,
		`{"apiVersion":"v1"}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":3}}`,
		`null`,
		`{"kind":"Pod","kind":"Pod"}`,
		`{"metadata":{"Name":"p"}}`,
	} {
		f.Add([]byte(s), uint8(0))
	}
	rs := resources()
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		r := rs[int(which)%len(rs)]
		fast, ok := decodeJSONFast(body, r.gvk(), r.newObj())
		if !ok {
			return
		}
		slow, err := serializerDecode(body, r)
		if err != nil || slow == nil {
			t.Fatalf("fast path accepted %q as %s, the serializer did not: %v", body, r.kind, err)
		}
		if !equality.Semantic.DeepEqual(fast, slow) && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast and serializer decodes of %q differ:\n%#v\n%#v", body, fast, slow)
		}
	})
}
