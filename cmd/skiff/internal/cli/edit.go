package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Edit opens one object in $KUBE_EDITOR, $EDITOR or vi and writes back what was saved, with an
// update guarded by the object's resourceVersion (a concurrent change is a clear conflict).
func (f *Factory) Edit(ctx context.Context, args []string) error {
	refs, err := f.resolveRefs(args)
	if err != nil {
		return err
	}
	if len(refs) != 1 {
		return errors.New("edit one object at a time: skiff edit TYPE NAME")
	}
	r := refs[0]
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	ri := resourceClient(dyn, r.res, r.ns)
	obj, err := ri.Get(ctx, r.name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetManagedFields(nil)
	orig, err := yaml.Marshal(obj.Object)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("# Edit %s and save; an empty file or no change cancels.\n# Lines starting with '#' are ignored.\n", r)
	tmp, err := os.CreateTemp("", "skiff-edit-*.yaml")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	path := tmp.Name()
	if _, err := tmp.WriteString(header + string(orig)); err != nil {
		tmp.Close()
		return err
	}
	tmp.Close()
	editor := os.Getenv("KUBE_EDITOR")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	fields := strings.Fields(editor)
	cmd := exec.CommandContext(ctx, fields[0], append(fields[1:], path)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %q: %w (the file is kept at %s)", editor, err, path)
	}
	edited, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	body := stripComments(edited)
	if len(bytes.TrimSpace(body)) == 0 || bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(orig)) {
		os.Remove(path)
		fmt.Fprintln(f.Out, "Edit cancelled, no changes made.")
		return nil
	}
	docs, err := ParseManifest(path, body)
	if err != nil {
		return fmt.Errorf("%w (your edit is kept at %s)", err, path)
	}
	if len(docs) != 1 || docs[0].Obj.GetName() != r.name || docs[0].Obj.GetKind() != obj.GetKind() {
		return fmt.Errorf("the edited file must hold the one %s %q (kept at %s)", obj.GetKind(), r.name, path)
	}
	if _, err := ri.Update(ctx, docs[0].Obj, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("%w\n(your edit is kept at %s: fix it and `skiff apply -f` it, or edit again)", err, path)
	}
	os.Remove(path)
	fmt.Fprintf(f.Out, "%s edited\n", r)
	return nil
}

func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			continue
		}
		out.Write(l)
		out.WriteByte('\n')
	}
	return out.Bytes()
}
