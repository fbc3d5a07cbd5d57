package apiserver

import (
	"testing"

	"github.com/skiffnet/skiff/controlplane/registry"
)

// FuzzDecodeValidate feeds arbitrary bodies through the create path's decode, defaulting
// and validation for every served kind: it must never panic, and what decodes must be
// validated without panicking either.
func FuzzDecodeValidate(f *testing.F) {
	seeds := []string{
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]}]}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30001,"targetPort":"http"}]}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`,
		`{"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"r"},"spec":{"template":{"metadata":{"labels":{"a":"b"}}}}}`,
		`{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"e"},"addressType":"IPv4","endpoints":[{"addresses":["1.2.3.4"]}]}`,
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","unknown":1}}`,
		`{"kind":"Namespace"}`,
		`[`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(0))
	}
	rs := resources()
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		r := rs[int(which)%len(rs)]
		for _, mt := range []string{"application/json", "application/yaml"} {
			obj, err := decodeBytes(body, mt, r.gvk(), r.newObj())
			if err != nil {
				continue
			}
			registry.PrepareForCreate(r.strategy, obj)
			_ = registry.Validate(obj)
			_ = registry.ValidateUpdate(obj, obj.DeepCopyObject())
			_, _, _ = registry.Attrs(obj)
		}
	})
}
