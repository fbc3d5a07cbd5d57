package bench

import "testing"

// FuzzDecodeReply: any bytes from the network decode to an identity or an error, never a panic,
// and a reply the servers encode decodes back to itself.
func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte{replyMagic, 0, 3, 0x1f, 0x90})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := decodeReply(b)
		if err != nil {
			return
		}
		buf := make([]byte, msgSize)
		encodeReply(buf, id)
		if back, err := decodeReply(buf); err != nil || back != id {
			t.Fatalf("round trip %+v -> %+v, %v", id, back, err)
		}
	})
}
