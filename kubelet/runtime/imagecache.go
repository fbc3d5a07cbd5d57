package runtime

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// imageInfo is what a container create needs from its image. It depends only on the image's
// manifest digest (content-addressed, so it never changes) and is computed once per image:
// without it every create reads the manifest and config from the content store three times
// and temporarily mounts the image's root filesystem to read /etc/group.
type imageInfo struct {
	config  ocispec.ImageConfig
	chainID string // parent snapshot of a container's root filesystem

	mu sync.Mutex
	// proc is the process part of the spec that containerd's WithImageConfig makes (env, cwd,
	// user with the supplementary groups from the image's /etc/group), once one create did it.
	proc *specs.Process
}

// imageCache maps manifest digests to their imageInfo, and remembers which images are unpacked.
type imageCache struct {
	mu       sync.Mutex
	infos    map[digest.Digest]*imageInfo
	unpacked map[digest.Digest]bool
}

func (c *imageCache) info(ctx context.Context, img client.Image) (*imageInfo, error) {
	key := img.Target().Digest
	c.mu.Lock()
	ii := c.infos[key]
	c.mu.Unlock()
	if ii != nil {
		return ii, nil
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("read config of image %s: %w", img.Name(), err)
	}
	diffs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("read layers of image %s: %w", img.Name(), err)
	}
	ii = &imageInfo{config: spec.Config, chainID: identity.ChainID(diffs).String()}
	c.mu.Lock()
	if c.infos == nil {
		c.infos = map[digest.Digest]*imageInfo{}
	}
	c.infos[key] = ii
	c.mu.Unlock()
	return ii, nil
}

func (c *imageCache) isUnpacked(d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unpacked[d]
}

func (c *imageCache) setUnpacked(d digest.Digest, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unpacked == nil {
		c.unpacked = map[digest.Digest]bool{}
	}
	if ok {
		c.unpacked[d] = true
	} else {
		delete(c.unpacked, d)
	}
}

// withImageConfig is oci.WithImageConfig with its result kept per image: the first create of
// an image runs containerd's own option, the others copy what it made. It must be the first
// spec option, so the defaults it starts from are the same every time.
func withImageConfig(img client.Image, ii *imageInfo) oci.SpecOpts {
	return func(ctx context.Context, cl oci.Client, c *containers.Container, s *oci.Spec) error {
		ii.mu.Lock()
		defer ii.mu.Unlock()
		if ii.proc == nil {
			if err := oci.WithImageConfig(img)(ctx, cl, c, s); err != nil {
				return err
			}
			p := *s.Process
			p.Env = slices.Clone(p.Env)
			p.Args = slices.Clone(p.Args)
			p.User.AdditionalGids = slices.Clone(p.User.AdditionalGids)
			ii.proc = &p
			return nil
		}
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Env = slices.Clone(ii.proc.Env)
		s.Process.Args = slices.Clone(ii.proc.Args)
		s.Process.Cwd = ii.proc.Cwd
		s.Process.User = ii.proc.User
		s.Process.User.AdditionalGids = slices.Clone(ii.proc.User.AdditionalGids)
		return nil
	}
}

// withRootfs prepares the container's root filesystem snapshot on the image's layers (what
// client.WithNewSnapshot does, without re-reading the image's manifest and config).
func withRootfs(id string, ii *imageInfo) client.NewContainerOpts {
	return func(ctx context.Context, cl *client.Client, c *containers.Container) error {
		if _, err := cl.SnapshotService(Snapshotter).Prepare(ctx, id, ii.chainID); err != nil {
			return err
		}
		c.Snapshotter = Snapshotter
		c.SnapshotKey = id
		return nil
	}
}

// isMissingParent tells a snapshot prepare that failed because the image's layers are gone
// (the image was removed and imported again): unpack and retry.
func isMissingParent(err error) bool { return errdefs.IsNotFound(err) }
