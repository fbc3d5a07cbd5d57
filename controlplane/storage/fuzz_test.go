package storage_test

import (
	"bytes"
	"testing"

	"github.com/skiffnet/skiff/controlplane/storage"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzDecode feeds arbitrary bytes to DefaultCodec: they must decode or fail with an error,
// never panic, and whatever decodes must encode again.
func FuzzDecode(f *testing.F) {
	codec := storage.DefaultCodec()
	var buf bytes.Buffer
	if err := codec.Encode(benchPod("default", "seed"), &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":80}]}}`))
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":3}}`))
	f.Add([]byte(`{"kind":"Pod"}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Nope"}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"a":1}}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"resources":{"limits":{"cpu":"1e999"}}}]}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte{0xff, 0x00, '{'})
	f.Fuzz(func(t *testing.T, data []byte) {
		targets := []runtime.Object{&corev1.Pod{}, &corev1.Service{}, &appsv1.Deployment{}, nil}
		for _, into := range targets {
			var obj runtime.Object
			var err error
			if into == nil {
				obj, err = runtime.Decode(codec, data)
			} else {
				err = runtime.DecodeInto(codec, data, into)
				obj = into
			}
			if err != nil {
				continue
			}
			var out bytes.Buffer
			if err := codec.Encode(obj, &out); err != nil {
				t.Fatalf("decoded %T from %q but cannot encode it: %v", obj, data, err)
			}
		}
	})
}

// Decoding checks the kind: a Service's bytes do not fill a Pod.
func TestDecodeWrongKind(t *testing.T) {
	codec := storage.DefaultCodec()
	svc := []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}`)
	if err := runtime.DecodeInto(codec, svc, &corev1.Pod{}); err == nil {
		t.Fatal("decoding a Service into a Pod succeeded")
	}
	obj, err := runtime.Decode(codec, svc)
	if _, ok := obj.(*corev1.Service); err != nil || !ok {
		t.Fatalf("decode with no target = %T, %v; want *v1.Service", obj, err)
	}
	// No kind in the data: the target's kind is assumed.
	p := &corev1.Pod{}
	if err := runtime.DecodeInto(codec, []byte(`{"metadata":{"name":"p"}}`), p); err != nil || p.Name != "p" {
		t.Fatalf("decode without kind into Pod: %v %q", err, p.Name)
	}
	// Encoding sets apiVersion and kind without touching the caller's object.
	var buf bytes.Buffer
	in := &corev1.Pod{}
	if err := codec.Encode(in, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"kind":"Pod"`)) || !bytes.Contains(buf.Bytes(), []byte(`"apiVersion":"v1"`)) {
		t.Errorf("encoded %s without apiVersion/kind", buf.Bytes())
	}
	if in.Kind != "" {
		t.Errorf("Encode set Kind %q on the caller's object", in.Kind)
	}
}
