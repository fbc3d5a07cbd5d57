package cli

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func frame(id byte, payload string) []byte {
	b := make([]byte, 5+len(payload))
	b[0] = id
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	copy(b[5:], payload)
	return b
}

func TestDecodeExecStream(t *testing.T) {
	var in bytes.Buffer
	in.Write(frame(1, "hello "))
	in.Write(frame(2, "warn\n"))
	in.Write(frame(1, "world\n"))
	in.Write(frame(3, "7"))
	var out, errOut bytes.Buffer
	code, err := DecodeExecStream(&in, &out, &errOut)
	if err != nil || code != 7 || out.String() != "hello world\n" || errOut.String() != "warn\n" {
		t.Errorf("code %d err %v out %q err %q", code, err, out.String(), errOut.String())
	}
}

func TestDecodeExecStreamErrors(t *testing.T) {
	for name, in := range map[string][]byte{
		"no exit frame": frame(1, "x"),
		"truncated":     frame(1, "abc")[:6],
		"unknown id":    frame(9, ""),
		"bad exit":      frame(3, "x"),
		"huge frame":    {1, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := DecodeExecStream(bytes.NewReader(in), &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzDecodeExecStream(f *testing.F) {
	f.Add(append(frame(1, "out"), frame(3, "0")...))
	f.Add(frame(2, strings.Repeat("e", 100)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		_, _ = DecodeExecStream(bytes.NewReader(data), &out, &out)
		if out.Len() > len(data) {
			t.Fatal("wrote more than it read")
		}
	})
}
