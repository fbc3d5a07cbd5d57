package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Document is one object read from a manifest.
type Document struct {
	Source string // file name, or "stdin"
	Index  int    // 1-based document number within the source
	Line   int    // line where the document starts
	Obj    *unstructured.Unstructured
}

// Where names the document for messages: "web.yaml: document 2 (line 14)".
func (d Document) Where() string {
	return fmt.Sprintf("%s: document %d (line %d)", d.Source, d.Index, d.Line)
}

var manifestExt = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// ReadManifests reads every document of the given files, directories (recursing with recursive)
// and "-" (stdin). The first syntax error stops it: nothing is applied from a broken input.
func ReadManifests(paths []string, recursive bool, stdin io.Reader) ([]Document, error) {
	if len(paths) == 0 {
		return nil, errors.New("no manifest given: pass -f FILE, -f DIR or -f - for stdin")
	}
	var docs []Document
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read stdin: %w", err)
			}
			d, err := ParseManifest("stdin", data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
			continue
		}
		files, err := manifestFiles(p, recursive)
		if err != nil {
			return nil, err
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("read manifest: %w", err)
			}
			d, err := ParseManifest(file, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no objects found in %s", strings.Join(paths, ", "))
	}
	return docs, nil
}

func manifestFiles(p string, recursive bool) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the path %q does not exist", p)
		}
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if manifestExt[strings.ToLower(filepath.Ext(path))] {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", p, err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no .yaml, .yml or .json files in %s (use -R for subdirectories)", p)
	}
	return files, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:error converting YAML to JSON: )?yaml: line (\d+): `)

// ParseManifest splits a YAML or JSON stream into objects. Errors name the document number and
// the line in the file.
func ParseManifest(source string, data []byte) ([]Document, error) {
	var docs []Document
	idx := 0
	for _, chunk := range splitYAML(data) {
		// Documents are numbered as a reader counts them: empty ones (only comments) do not count.
		if isBlankYAML(chunk.text) {
			continue
		}
		idx++
		js, err := yaml.YAMLToJSON(chunk.text)
		if err != nil {
			msg := err.Error()
			line := chunk.line
			if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
				n, _ := strconv.Atoi(m[1])
				line = chunk.line + n - 1
				msg = msg[len(m[0]):]
			} else {
				msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
			}
			return nil, fmt.Errorf("%s: document %d: line %d: %s", source, idx, line, msg)
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil || obj == nil {
			return nil, fmt.Errorf("%s: document %d (line %d): not an object: a manifest document must be a mapping with apiVersion, kind and metadata", source, idx, chunk.line)
		}
		if err := normalizeNumbers(obj); err != nil {
			return nil, fmt.Errorf("%s: document %d (line %d): %w", source, idx, chunk.line, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		d := Document{Source: source, Index: idx, Line: chunk.line, Obj: u}
		if err := checkObject(u); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Where(), err)
		}
		if u.IsList() {
			items, err := listItems(d)
			if err != nil {
				return nil, err
			}
			docs = append(docs, items...)
			continue
		}
		docs = append(docs, d)
	}
	return docs, nil
}

func listItems(d Document) ([]Document, error) {
	var out []Document
	err := d.Obj.EachListItem(func(o runtimeObject) error {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("list item is %T", o)
		}
		if err := checkObject(u); err != nil {
			return err
		}
		out = append(out, Document{Source: d.Source, Index: d.Index, Line: d.Line, Obj: u})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: list item: %w", d.Where(), err)
	}
	return out, nil
}

func checkObject(u *unstructured.Unstructured) error {
	var missing []string
	if u.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if u.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not set: every object needs apiVersion and kind (e.g. apiVersion: v1, kind: Service)", strings.Join(missing, " and "))
	}
	if u.IsList() {
		return nil
	}
	if u.GetName() == "" && u.GetGenerateName() == "" {
		return fmt.Errorf("%s has no metadata.name: set one", u.GetKind())
	}
	return nil
}

// normalizeNumbers turns json.Number into int64 or float64, as unstructured objects expect.
func normalizeNumbers(v any) error {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if n, ok := e.(json.Number); ok {
				x, err := number(n)
				if err != nil {
					return err
				}
				t[k] = x
				continue
			}
			if err := normalizeNumbers(e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range t {
			if n, ok := e.(json.Number); ok {
				x, err := number(n)
				if err != nil {
					return err
				}
				t[i] = x
				continue
			}
			if err := normalizeNumbers(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func number(n json.Number) (any, error) {
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	f, err := n.Float64()
	if err != nil {
		return nil, fmt.Errorf("bad number %q", n.String())
	}
	return f, nil
}

type yamlChunk struct {
	text []byte
	line int // 1-based line of the chunk's first line
}

// splitYAML splits at "---" separator lines, remembering where each document starts.
func splitYAML(data []byte) []yamlChunk {
	var chunks []yamlChunk
	cur := yamlChunk{line: 1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	lineNo := 0
	var buf bytes.Buffer
	for sc.Scan() {
		lineNo++
		l := sc.Text()
		if isSeparator(l) {
			cur.text = append([]byte(nil), buf.Bytes()...)
			chunks = append(chunks, cur)
			buf.Reset()
			cur = yamlChunk{line: lineNo + 1}
			continue
		}
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	cur.text = buf.Bytes()
	chunks = append(chunks, cur)
	return chunks
}

func isSeparator(l string) bool {
	if !strings.HasPrefix(l, "---") {
		return false
	}
	rest := strings.TrimRight(l[3:], " \t\r")
	return rest == "" || strings.HasPrefix(rest, " #") || strings.HasPrefix(rest, "\t#")
}

// isBlankYAML is true for a chunk of only whitespace and comments.
func isBlankYAML(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}
