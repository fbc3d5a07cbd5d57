package datapath

import (
	"crypto/rand"
	"encoding/hex"
)

func randSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
