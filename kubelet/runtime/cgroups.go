package runtime

import (
	"os"
	"path/filepath"
)

// RemoveNamespaceCgroups removes the cgroup directories runc made for this namespace's
// containers (/sys/fs/cgroup/*/<namespace>, on every hierarchy). runc removes a container's own
// cgroup when the container goes but leaves the namespace's parent; call this once the
// namespace has no containers left. Directories still in use stay (rmdir refuses them).
func (r *Runtime) RemoveNamespaceCgroups() {
	RemoveCgroupsMatching(r.namespace)
}

// RemoveCgroupsMatching removes the cgroup directories directly under each hierarchy of
// /sys/fs/cgroup whose name matches pattern (filepath.Match syntax), children first.
func RemoveCgroupsMatching(pattern string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", pattern))
	for _, d := range dirs {
		removeCgroup(d)
	}
}

func removeCgroup(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}
