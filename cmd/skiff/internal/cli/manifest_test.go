package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseManifestMultiDoc(t *testing.T) {
	in := `# leading comment
---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
# only a comment: not a document
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
data: {a: "1", n: "2"}
---
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}]}
`
	docs, err := ParseManifest("in.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.Obj.GetKind()+"/"+d.Obj.GetName())
	}
	if strings.Join(got, " ") != "Namespace/demo ConfigMap/c Secret/s Service/svc" {
		t.Errorf("got %v", got)
	}
	if docs[1].Index != 2 || docs[1].Line != 9 {
		t.Errorf("configmap at document %d line %d, want 2 and 9", docs[1].Index, docs[1].Line)
	}
	port, _, _ := unstructuredInt(docs[3].Obj.Object, "spec", "ports")
	if port != 80 {
		t.Errorf("port = %v, want int64 80", port)
	}
}

func unstructuredInt(m map[string]any, path ...string) (int64, bool, error) {
	ports := m["spec"].(map[string]any)["ports"].([]any)
	v, ok := ports[0].(map[string]any)["port"].(int64)
	return v, ok, nil
}

func TestParseManifestSyntaxErrorNamesDocumentAndLine(t *testing.T) {
	in := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   bad: indent\n"
	_, err := ParseManifest("bad.yaml", []byte(in))
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "bad.yaml: document 2: line 9:") {
		t.Errorf("error %q: want the file, document 2 and line 9", err)
	}
}

func TestParseManifestMissingFields(t *testing.T) {
	for in, want := range map[string]string{
		"kind: ConfigMap\nmetadata: {name: a}\n":      "apiVersion not set",
		"apiVersion: v1\nkind: ConfigMap\ndata: {}\n": "no metadata.name",
		"- a\n- b\n":                            "not an object",
		"apiVersion: v1\nmetadata: {name: x}\n": "kind not set",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n": "",
	} {
		_, err := ParseManifest("f.yaml", []byte(in))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestReadManifestsDirs(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
	write("notes.txt", "not a manifest")
	write("sub/b.json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`)
	docs, err := ReadManifests([]string{dir}, false, nil)
	if err != nil || len(docs) != 1 {
		t.Fatalf("flat: %d docs, %v", len(docs), err)
	}
	docs, err = ReadManifests([]string{dir}, true, nil)
	if err != nil || len(docs) != 2 {
		t.Fatalf("recursive: %d docs, %v", len(docs), err)
	}
	_, err = ReadManifests([]string{filepath.Join(dir, "missing.yaml")}, false, nil)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
	docs, err = ReadManifests([]string{"-"}, false, strings.NewReader("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n"))
	if err != nil || len(docs) != 1 || docs[0].Source != "stdin" {
		t.Errorf("stdin: %v %v", docs, err)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n{}\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"kind":"x"}]}`))
	f.Add([]byte("a: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := ParseManifest("fuzz", data)
		if err != nil {
			return
		}
		for _, d := range docs {
			if d.Obj.GetKind() == "" || d.Obj.GetAPIVersion() == "" {
				t.Fatalf("document without kind/apiVersion accepted: %v", d.Obj)
			}
		}
	})
}
