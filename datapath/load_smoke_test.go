package datapath

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

func testPinDir(t testing.TB) string {
	dir := filepath.Join("/sys/fs/bpf", "skiff-test-"+randSuffix(6))
	t.Cleanup(func() {
		if !keepPins() {
			os.RemoveAll(dir)
		}
	})
	return dir
}

func TestE2ELoadObjects(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF)
	dir := testPinDir(t)
	cfg, _, _, err := (&Config{PinDir: dir}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureBPFFS(dir); err != nil {
		t.Fatal(err)
	}
	o, err := loadObjects(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o.close()
	o, err = loadObjects(cfg)
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	o.close()
}
