package cli

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Exec stream ids of skiff's framing (contracts.md): 1 byte id, 4 bytes big-endian length, payload.
const (
	execStdout = 1
	execStderr = 2
	execExit   = 3
)

const maxExecFrame = 16 << 20

// DecodeExecStream copies stdout and stderr frames and returns the exit code from the final
// frame. A stream that ends without an exit frame is an error.
func DecodeExecStream(r io.Reader, stdout, stderr io.Writer) (int, error) {
	var hdr [5]byte
	buf := make([]byte, 32*1024)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, errors.New("the stream ended without an exit code (the agent closed the connection)")
			}
			return 0, fmt.Errorf("read frame header: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxExecFrame {
			return 0, fmt.Errorf("frame of %d bytes is larger than %d: not a skiff exec stream", n, maxExecFrame)
		}
		switch hdr[0] {
		case execStdout, execStderr:
			w := stdout
			if hdr[0] == execStderr {
				w = stderr
			}
			for n > 0 {
				chunk := buf
				if uint32(len(chunk)) > n {
					chunk = chunk[:n]
				}
				m, err := io.ReadFull(r, chunk)
				if err != nil {
					return 0, fmt.Errorf("read frame: %w", err)
				}
				if _, err := w.Write(chunk[:m]); err != nil {
					return 0, fmt.Errorf("write output: %w", err)
				}
				n -= uint32(m)
			}
		case execExit:
			if n > 32 {
				return 0, fmt.Errorf("exit frame of %d bytes: not a skiff exec stream", n)
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(r, b); err != nil {
				return 0, fmt.Errorf("read exit code: %w", err)
			}
			code, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return 0, fmt.Errorf("bad exit code %q", b)
			}
			return code, nil
		default:
			return 0, fmt.Errorf("unknown stream id %d: not a skiff exec stream", hdr[0])
		}
	}
}
