package bench

import (
	"os"
	"testing"
)

// TestMain doubles as the load-generator child: Launcher re-runs the test binary with
// LoadgenEnv=1, and the child does its one load instead of running tests.
func TestMain(m *testing.M) {
	if os.Getenv(LoadgenEnv) == "1" {
		os.Exit(LoadgenMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}
