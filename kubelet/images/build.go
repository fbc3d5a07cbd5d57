// Package images builds skiff's own test images (no registry needed): static Go binaries
// from this directory on an empty base, written as docker-archive tarballs that
// `skiff image import` loads.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is one test image.
type Image struct {
	Ref     string // image reference pods use
	Package string // Go package of its binary
	Binary  string // path of the binary in the image (the entrypoint)
	File    string // tarball name
}

// The test images.
var (
	Echo      = Image{Ref: "skiff.local/echo:latest", Package: "github.com/skiffnet/skiff/kubelet/images/echo", Binary: "/echo", File: "echo.tar"}
	DNSClient = Image{Ref: "skiff.local/dnsclient:latest", Package: "github.com/skiffnet/skiff/kubelet/images/dnsclient", Binary: "/dnsclient", File: "dnsclient.tar"}
	All       = []Image{Echo, DNSClient}
)

// Build compiles every test image into outDir and returns the tarball paths. It must run
// inside the skiff module (go build resolves the packages from the working directory).
// The output is reproducible: fixed timestamps, -trimpath, no build ID.
func Build(ctx context.Context, outDir string) ([]string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("image output dir: %w", err)
	}
	var out []string
	for _, im := range All {
		p, err := BuildOne(ctx, im, outDir)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// BuildOne builds one image into outDir.
func BuildOne(ctx context.Context, im Image, outDir string) (string, error) {
	tmp, err := os.MkdirTemp("", "skiff-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, filepath.Base(im.Binary))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", bin, im.Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", im.Package, err, b)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	img, err := imageOf(im, exe)
	if err != nil {
		return "", err
	}
	ref, err := name.NewTag(im.Ref)
	if err != nil {
		return "", err
	}
	path := filepath.Join(outDir, im.File)
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// imageOf is an empty base plus one layer holding the binary and an empty /tmp.
func imageOf(im Image, exe []byte) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	hdrs := []struct {
		h    tar.Header
		data []byte
	}{
		{tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: epoch}, nil},
		{tar.Header{Name: im.Binary[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(exe)), ModTime: epoch}, exe},
	}
	for _, e := range hdrs {
		h := e.h
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{im.Binary}
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.WorkingDir = "/"
	return mutate.ConfigFile(img, cf)
}
