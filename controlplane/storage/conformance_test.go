package storage_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/storage"
	"github.com/skiffnet/skiff/controlplane/storage/storagetest"
)

func TestMain(m *testing.M) {
	// Short enough that the bookmark tests finish quickly.
	storage.BookmarkInterval = 200 * time.Millisecond
	os.Exit(m.Run())
}

// openEmbedded starts an embedded etcd in a temporary directory for one test.
func openEmbedded(t testing.TB) *storage.Etcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := storage.OpenEtcd(ctx, storage.EtcdConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestConformanceEmbedded(t *testing.T) {
	storagetest.RunConformance(t, func(t *testing.T) storage.Interface {
		return storage.New(openEmbedded(t).Client, storage.DefaultCodec())
	})
}
