package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// ErrImageNotFound means the image is not in the node's image store and there is no registry
// to pull it from.
var ErrImageNotFound = errors.New("image not found")

// ImageInfo is one image in the store.
type ImageInfo struct {
	Name   string
	Digest string
	Size   int64
}

// NormalizeRef turns a pod's image field into the full reference the store uses
// ("echo" -> "docker.io/library/echo:latest").
func NormalizeRef(image string) (string, error) {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	return named.String(), nil
}

// Import reads a docker-archive (`docker save`) or OCI layout tarball, stores its images under
// their names and unpacks them for the overlayfs snapshotter. It returns the names imported.
func (r *Runtime) Import(ctx context.Context, tarball io.Reader) ([]string, error) {
	ctx = r.ctx(ctx)
	imgs, err := r.c.Import(ctx, tarball,
		// OCI layouts may name images with a bare tag ("latest"); only full names are usable.
		client.WithImageRefTranslator(func(name string) string {
			n, err := NormalizeRef(name)
			if err != nil {
				return ""
			}
			return n
		}),
		client.WithSkipMissing(),
	)
	if err != nil {
		return nil, fmt.Errorf("import image tarball: %w", err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import image tarball: it names no image (tag it: docker save NAME:TAG, or set org.opencontainers.image.ref.name to a full reference)")
	}
	var names []string
	for _, md := range imgs {
		img := client.NewImage(r.c, md)
		if err := img.Unpack(ctx, Snapshotter); err != nil {
			return names, fmt.Errorf("unpack %s: %w", md.Name, err)
		}
		r.images.setUnpacked(md.Target.Digest, true)
		names = append(names, md.Name)
	}
	return names, nil
}

// Images lists the store.
func (r *Runtime) Images(ctx context.Context) ([]ImageInfo, error) {
	ctx = r.ctx(ctx)
	imgs, err := r.c.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []ImageInfo
	for _, img := range imgs {
		size, _ := img.Size(ctx)
		out = append(out, ImageInfo{Name: img.Name(), Digest: img.Target().Digest.String(), Size: size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Image returns the named image, unpacked. With no registry, a missing image is ErrImageNotFound.
func (r *Runtime) Image(ctx context.Context, ref string) (client.Image, error) {
	ctx = r.ctx(ctx)
	full, err := NormalizeRef(ref)
	if err != nil {
		return nil, err
	}
	img, err := r.c.GetImage(ctx, full)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s is not on this node (no registry is configured: import it with `skiff image import FILE.tar`)", ErrImageNotFound, full)
		}
		return nil, fmt.Errorf("get image %s: %w", full, err)
	}
	// Layers, once unpacked, stay until the image is removed; a create that finds them gone
	// (removed and imported again) forgets this and comes back here.
	if r.images.isUnpacked(img.Target().Digest) {
		return img, nil
	}
	if err := r.unpack(ctx, img); err != nil {
		return nil, err
	}
	return img, nil
}

func (r *Runtime) unpack(ctx context.Context, img client.Image) error {
	ok, err := img.IsUnpacked(ctx, Snapshotter)
	if err != nil {
		return fmt.Errorf("check image %s: %w", img.Name(), err)
	}
	if !ok {
		if err := img.Unpack(ctx, Snapshotter); err != nil {
			return fmt.Errorf("unpack %s: %w", img.Name(), err)
		}
	}
	r.images.setUnpacked(img.Target().Digest, true)
	return nil
}

// RemoveImage deletes an image from the store.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	full, err := NormalizeRef(ref)
	if err != nil {
		return err
	}
	// Synchronous: the garbage collector also drops the image's snapshots now.
	return r.c.ImageService().Delete(r.ctx(ctx), full, images.SynchronousDelete())
}
