package cli

import (
	"testing"
)

// The example manifests parse, and name the objects the e2e test expects, in that order.
func TestExamplesParse(t *testing.T) {
	docs, err := ReadManifests([]string{examplesDir}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != len(exampleObjects) {
		t.Fatalf("%d objects, want %d", len(docs), len(exampleObjects))
	}
	for i, d := range docs {
		if got := ObjectName(d.Obj.GroupVersionKind().GroupKind(), d.Obj.GetName()); got != exampleObjects[i] {
			t.Errorf("object %d = %s, want %s", i, got, exampleObjects[i])
		}
	}
}
