package bench

import (
	"strings"
	"testing"
	"time"
)

// TestDNSBenchAnswers runs `skiff bench dns` briefly on loopback and checks that every answer
// was the service's ClusterIP (no figures are asserted).
func TestDNSBenchAnswers(t *testing.T) {
	out, err := RunDNS(t.Context(), DNSConfig{Services: 50, Duration: 400 * time.Millisecond, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out)
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "| skiff ") {
			line = l
		}
	}
	f := strings.Split(line, "|")
	if len(f) < 7 || strings.TrimSpace(f[5]) != "0" || strings.TrimSpace(f[6]) != "0" {
		t.Errorf("want a skiff row with 0 wrong and 0 failed answers, got %q", line)
	}
	if _, err := RunDNS(t.Context(), DNSConfig{Peer: "nonsense"}); err == nil || !strings.Contains(err.Error(), "--peer") {
		t.Errorf("bad --peer: %v", err)
	}
}
