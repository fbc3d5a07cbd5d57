package runtime

import (
	"fmt"
	"testing"
)

func TestResolveArgs(t *testing.T) {
	ep, cmd := []string{"/ep"}, []string{"c1", "c2"}
	cases := []struct {
		command, args []string
		want          string
	}{
		{nil, nil, "[/ep c1 c2]"},
		{nil, []string{"a"}, "[/ep a]"},
		{[]string{"/x"}, nil, "[/x]"},
		{[]string{"/x"}, []string{"a"}, "[/x a]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(ResolveArgs(c.command, c.args, ep, cmd)); got != c.want {
			t.Errorf("ResolveArgs(%v, %v) = %s, want %s", c.command, c.args, got, c.want)
		}
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"echo":                    "docker.io/library/echo:latest",
		"skiff.local/echo:latest": "skiff.local/echo:latest",
		"skiff/echo:v1":           "docker.io/skiff/echo:v1",
	} {
		if got, err := NormalizeRef(in); err != nil || got != want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeRef("UPPER/Case:bad tag"); err == nil {
		t.Error("bad reference accepted")
	}
}
