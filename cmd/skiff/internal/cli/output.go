package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

// OutputFormat is a parsed -o value.
type OutputFormat struct {
	Kind     string // "", wide, yaml, json, name, jsonpath
	JSONPath *jsonpath.JSONPath
}

// ParseOutput validates -o.
func ParseOutput(o string) (OutputFormat, error) {
	switch {
	case o == "" || o == "wide" || o == "yaml" || o == "json" || o == "name":
		return OutputFormat{Kind: o}, nil
	case strings.HasPrefix(o, "jsonpath=") || strings.HasPrefix(o, "jsonpath-as-text="):
		expr := o[strings.Index(o, "=")+1:]
		jp := jsonpath.New("out").AllowMissingKeys(true)
		if err := jp.Parse(relaxedJSONPath(expr)); err != nil {
			return OutputFormat{}, fmt.Errorf("bad jsonpath %q: %v", expr, err)
		}
		return OutputFormat{Kind: "jsonpath", JSONPath: jp}, nil
	}
	return OutputFormat{}, fmt.Errorf("unknown output format %q: use one of wide, yaml, json, name, jsonpath=TEMPLATE", o)
}

// relaxedJSONPath accepts ".metadata.name" and "metadata.name" as kubectl does.
func relaxedJSONPath(expr string) string {
	if strings.Contains(expr, "{") {
		return expr
	}
	expr = strings.TrimPrefix(expr, ".")
	return "{." + expr + "}"
}

// printStructured prints objs as yaml, json, name or jsonpath. single means one named object
// was asked for, which prints bare rather than as a List.
func printStructured(w io.Writer, f OutputFormat, objs []*unstructured.Unstructured, single bool) error {
	var doc any
	if single && len(objs) == 1 {
		doc = objs[0].Object
	} else {
		items := make([]any, 0, len(objs))
		for _, o := range objs {
			items = append(items, o.Object)
		}
		doc = map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{"resourceVersion": ""}, "items": items}
	}
	switch f.Kind {
	case "json":
		b, err := json.MarshalIndent(doc, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "name":
		for _, o := range objs {
			fmt.Fprintln(w, ObjectName(o.GroupVersionKind().GroupKind(), o.GetName()))
		}
		return nil
	case "jsonpath":
		var buf bytes.Buffer
		if err := f.JSONPath.Execute(&buf, doc); err != nil {
			return fmt.Errorf("jsonpath: %w", err)
		}
		_, err := w.Write(buf.Bytes())
		return err
	}
	return fmt.Errorf("output %q is not structured", f.Kind)
}
