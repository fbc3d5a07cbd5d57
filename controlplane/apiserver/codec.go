package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	kjson "sigs.k8s.io/json"
)

// maxBody bounds request bodies (etcd refuses values over 1.5 MiB anyway).
const maxBody = 3 << 20

var codecs = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("read request body: %v", err)
	}
	if len(body) > maxBody {
		return nil, tooLarge()
	}
	return body, nil
}

func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return runtime.ContentTypeJSON
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// decode reads an object of kind want from the body: JSON and YAML strictly (an unknown or
// duplicate field is a 400 naming it), protobuf as client-go's typed clients send it. A body
// without apiVersion/kind is taken to be of kind want; any other kind is refused.
func decode(r *http.Request, want schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return decodeBytes(body, mediaType(r), want, into)
}

func decodeBytes(body []byte, mt string, want schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	if mt == runtime.ContentTypeJSON && into != nil {
		if obj, ok := decodeJSONFast(body, want, into); ok {
			return obj, nil
		}
		// Anything unusual takes the serializer's path, for its exact error messages.
		v := reflect.ValueOf(into).Elem()
		v.Set(reflect.Zero(v.Type()))
	}
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), mt)
	if !ok {
		return nil, unsupportedMedia(mt)
	}
	dec := info.Serializer
	if info.StrictSerializer != nil {
		dec = info.StrictSerializer
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, badRequest("the request body is empty: send a %s object", want.Kind)
	}
	obj, gvk, err := dec.Decode(body, &want, into)
	if err != nil {
		if runtime.IsStrictDecodingError(err) {
			return nil, badRequest("%s", err.Error())
		}
		return nil, badRequest("decode %s: %v", want.Kind, err)
	}
	if gvk == nil || *gvk != want {
		return nil, badRequest("the body is %s, but this endpoint takes %s (apiVersion %q, kind %q)", gvkString(gvk), want.Kind, want.GroupVersion().String(), want.Kind)
	}
	return obj, nil
}

// decodeJSONFast decodes a well-formed JSON body of kind want in one strict pass. The
// serializer makes two (apiVersion/kind first, then the object), which cost a fifth of the
// API server's CPU under a create or bind load. ok is false for anything else: bad JSON,
// unknown or duplicate fields, another kind.
func decodeJSONFast(body []byte, want schema.GroupVersionKind, into runtime.Object) (runtime.Object, bool) {
	strictErrs, err := kjson.UnmarshalStrict(body, into)
	if err != nil || len(strictErrs) > 0 {
		return nil, false
	}
	// The serializer's defaulting of a missing apiVersion or kind.
	got := into.GetObjectKind().GroupVersionKind()
	if got.Kind == "" {
		got.Kind = want.Kind
	}
	if got.Version == "" && got.Group == "" {
		got.Group, got.Version = want.Group, want.Version
	}
	if got.Version == "" && got.Group == want.Group {
		got.Version = want.Version
	}
	if got != want {
		return nil, false
	}
	return into, true
}

func gvkString(g *schema.GroupVersionKind) string {
	if g == nil {
		return "of no known kind"
	}
	return fmt.Sprintf("apiVersion %q kind %q", g.GroupVersion().String(), g.Kind)
}

// protobufSerializer encodes responses for clients that ask for protobuf first (client-go's
// typed clients do): decoding a 10,000-pod list is several times cheaper than JSON.
var protobufSerializer = func() runtime.Serializer {
	info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	return info.Serializer
}()

// wantsProtobuf reports whether the Accept header prefers protobuf over JSON.
func wantsProtobuf(accept string) bool {
	p := strings.Index(accept, runtime.ContentTypeProtobuf)
	if p < 0 {
		return false
	}
	j := strings.Index(accept, runtime.ContentTypeJSON)
	return j < 0 || p < j
}

// writeObject encodes obj with its apiVersion and kind: protobuf when the client prefers it,
// JSON otherwise. Watch streams and errors are always JSON (clients accept both).
func writeObject(w http.ResponseWriter, code int, obj runtime.Object, gvk schema.GroupVersionKind) {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if rec, ok := w.(*recorder); ok && rec.protobuf && protobufSerializer != nil {
		var buf bytes.Buffer
		if err := protobufSerializer.Encode(obj, &buf); err == nil {
			w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
			w.WriteHeader(code)
			w.Write(buf.Bytes())
			return
		}
	}
	writeJSON(w, code, obj)
}

// bufPool recycles response buffers: a 10,000-pod list is 15 MB of JSON.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func writeJSON(w http.ResponseWriter, code int, v any) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 { // do not pin huge list buffers
			bufPool.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil { // Encode ends with a newline
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}
