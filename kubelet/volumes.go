package kubelet

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// podDir holds a pod's files: etc files, volumes and logs.
func (a *Agent) podDir(uid string) string { return filepath.Join(a.cfg.DataDir, "pods", uid) }

// resolvConf builds a pod's /etc/resolv.conf from its dnsPolicy and dnsConfig.
func resolvConf(pod *corev1.Pod, clusterDNS, domain, nodeResolv string) string {
	var servers, searches, options []string
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault
	}
	switch policy {
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet:
		servers = []string{clusterDNS}
		searches = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		options = []string{"ndots:5"}
	case corev1.DNSDefault:
		for _, line := range strings.Split(nodeResolv, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "nameserver":
				servers = append(servers, f[1])
			case "search":
				searches = append(searches, f[1:]...)
			case "options":
				options = append(options, f[1:]...)
			}
		}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		servers = append(servers, dc.Nameservers...)
		searches = append(searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			// A dnsConfig option replaces a default with the same name.
			name := o.Name
			options = slicesDeleteFunc(options, func(s string) bool { return strings.SplitN(s, ":", 2)[0] == name })
			options = append(options, opt)
		}
	}
	var b strings.Builder
	if len(searches) > 0 {
		b.WriteString("search " + strings.Join(searches, " ") + "\n")
	}
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return b.String()
}

func slicesDeleteFunc(s []string, del func(string) bool) []string {
	out := s[:0]
	for _, v := range s {
		if !del(v) {
			out = append(out, v)
		}
	}
	return out
}

// podHostname is the pod's hostname and its FQDN when it has a subdomain.
func podHostname(pod *corev1.Pod, domain string) (string, string) {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	fqdn := ""
	if pod.Spec.Subdomain != "" {
		fqdn = fmt.Sprintf("%s.%s.%s.svc.%s", h, pod.Spec.Subdomain, pod.Namespace, domain)
	}
	return h, fqdn
}

// etcHosts builds a pod's /etc/hosts.
func etcHosts(pod *corev1.Pod, podIP, domain string) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (skiff).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if podIP != "" {
		h, fqdn := podHostname(pod, domain)
		if fqdn != "" {
			fmt.Fprintf(&b, "%s\t%s\t%s\n", podIP, fqdn, h)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", podIP, h)
		}
	}
	for _, ha := range pod.Spec.HostAliases {
		fmt.Fprintf(&b, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
	}
	return b.String()
}

// writeEtcFiles writes resolv.conf, hosts and hostname for the pod's containers.
func (a *Agent) writeEtcFiles(pod *corev1.Pod, podIP string) error {
	dir := filepath.Join(a.podDir(string(pod.UID)), "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	nodeResolv, _ := os.ReadFile("/etc/resolv.conf")
	h, _ := podHostname(pod, a.cfg.ClusterDomain)
	files := map[string]string{
		"resolv.conf": resolvConf(pod, a.cfg.ClusterDNS, a.cfg.ClusterDomain, string(nodeResolv)),
		"hosts":       etcHosts(pod, podIP, a.cfg.ClusterDomain),
		"hostname":    h + "\n",
	}
	if pod.Spec.HostNetwork {
		hosts, _ := os.ReadFile("/etc/hosts")
		files["hosts"] = string(hosts)
	}
	for name, content := range files {
		if err := writeFileAtomic(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(p string, b []byte, mode os.FileMode) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// prepareVolumes makes every volume of the pod on disk and returns its host path by name.
// An error names the volume and why it cannot be mounted.
func (a *Agent) prepareVolumes(pod *corev1.Pod) (map[string]string, error) {
	out := map[string]string{}
	base := filepath.Join(a.podDir(string(pod.UID)), "volumes")
	for _, v := range pod.Spec.Volumes {
		p, err := a.prepareVolume(pod, base, v)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		out[v.Name] = p
	}
	return out, nil
}

func (a *Agent) prepareVolume(pod *corev1.Pod, base string, v corev1.Volume) (string, error) {
	dir := filepath.Join(base, v.Name)
	switch {
	case v.EmptyDir != nil:
		return dir, os.MkdirAll(dir, 0o777)
	case v.HostPath != nil:
		return hostPathVolume(v.HostPath)
	case v.ConfigMap != nil:
		cm, err := a.objects.ConfigMap(pod.Namespace, v.ConfigMap.Name)
		if err != nil {
			if optional(v.ConfigMap.Optional) && a.notFound(err) {
				return dir, os.MkdirAll(dir, 0o755)
			}
			return "", fmt.Errorf("configmap %q: %w", v.ConfigMap.Name, err)
		}
		data := map[string][]byte{}
		for k, val := range cm.Data {
			data[k] = []byte(val)
		}
		for k, val := range cm.BinaryData {
			data[k] = val
		}
		return dir, writeKeys(dir, data, v.ConfigMap.Items, v.ConfigMap.DefaultMode, optional(v.ConfigMap.Optional))
	case v.Secret != nil:
		s, err := a.objects.Secret(pod.Namespace, v.Secret.SecretName)
		if err != nil {
			if optional(v.Secret.Optional) && a.notFound(err) {
				return dir, os.MkdirAll(dir, 0o700)
			}
			return "", fmt.Errorf("secret %q: %w", v.Secret.SecretName, err)
		}
		return dir, writeKeys(dir, s.Data, v.Secret.Items, v.Secret.DefaultMode, optional(v.Secret.Optional))
	case v.DownwardAPI != nil:
		data := map[string][]byte{}
		for _, it := range v.DownwardAPI.Items {
			if it.FieldRef != nil {
				val, err := fieldValue(pod, it.FieldRef.FieldPath, pod.Status.PodIP, pod.Status.HostIP)
				if err != nil {
					return "", err
				}
				data[it.Path] = []byte(val)
			}
		}
		return dir, writeKeys(dir, data, nil, v.DownwardAPI.DefaultMode, false)
	case v.Projected != nil:
		// Enough for the service-account volume API servers inject: configMaps, secrets,
		// downward API items and an (empty) token.
		data := map[string][]byte{}
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				if cm, err := a.objects.ConfigMap(pod.Namespace, src.ConfigMap.Name); err == nil {
					for _, it := range src.ConfigMap.Items {
						data[it.Path] = []byte(cm.Data[it.Key])
					}
					if len(src.ConfigMap.Items) == 0 {
						for k, val := range cm.Data {
							data[k] = []byte(val)
						}
					}
				} else if !optional(src.ConfigMap.Optional) && !a.notFound(err) {
					return "", fmt.Errorf("configmap %q: %w", src.ConfigMap.Name, err)
				}
			case src.Secret != nil:
				if s, err := a.objects.Secret(pod.Namespace, src.Secret.Name); err == nil {
					for _, it := range src.Secret.Items {
						data[it.Path] = s.Data[it.Key]
					}
					if len(src.Secret.Items) == 0 {
						for k, val := range s.Data {
							data[k] = val
						}
					}
				} else if !optional(src.Secret.Optional) {
					return "", fmt.Errorf("secret %q: %w", src.Secret.Name, err)
				}
			case src.DownwardAPI != nil:
				for _, it := range src.DownwardAPI.Items {
					if it.FieldRef != nil {
						val, _ := fieldValue(pod, it.FieldRef.FieldPath, pod.Status.PodIP, pod.Status.HostIP)
						data[it.Path] = []byte(val)
					}
				}
			case src.ServiceAccountToken != nil:
				data[src.ServiceAccountToken.Path] = nil
			}
		}
		return dir, writeKeys(dir, data, nil, v.Projected.DefaultMode, false)
	}
	return "", errors.New("unsupported volume type (skiff supports emptyDir, hostPath, configMap, secret, downwardAPI, projected)")
}

func hostPathVolume(h *corev1.HostPathVolumeSource) (string, error) {
	p := filepath.Clean(h.Path)
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("hostPath.path %q must be absolute", h.Path)
	}
	typ := corev1.HostPathUnset
	if h.Type != nil {
		typ = *h.Type
	}
	fi, err := os.Stat(p)
	switch typ {
	case corev1.HostPathUnset:
		return p, nil
	case corev1.HostPathDirectoryOrCreate:
		if err != nil {
			return p, os.MkdirAll(p, 0o755)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("hostPath %s exists and is not a directory (type DirectoryOrCreate)", p)
		}
		return p, nil
	case corev1.HostPathFileOrCreate:
		if err != nil {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return "", err
			}
			return p, f.Close()
		}
		if fi.IsDir() {
			return "", fmt.Errorf("hostPath %s is a directory (type FileOrCreate)", p)
		}
		return p, nil
	}
	if err != nil {
		return "", fmt.Errorf("hostPath %s does not exist (type %s): create it or use type DirectoryOrCreate", p, typ)
	}
	mode := fi.Mode()
	ok := map[corev1.HostPathType]bool{
		corev1.HostPathDirectory: mode.IsDir(),
		corev1.HostPathFile:      mode.IsRegular(),
		corev1.HostPathSocket:    mode&os.ModeSocket != 0,
		corev1.HostPathCharDev:   mode&os.ModeCharDevice != 0,
		corev1.HostPathBlockDev:  mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0,
	}[typ]
	if !ok {
		return "", fmt.Errorf("hostPath %s is not of type %s", p, typ)
	}
	return p, nil
}

// writeKeys writes a ConfigMap/Secret-like volume: every key, or only the items listed.
func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath, mode *int32, opt bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fm := os.FileMode(0o644)
	if mode != nil {
		fm = os.FileMode(*mode) & 0o777
	}
	files := map[string][]byte{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = v
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			return fmt.Errorf("key %q not found (items[].key)", it.Key)
		}
		files[it.Path] = v
	}
	for p, v := range files {
		clean := path.Clean(p)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("path %q must be relative and stay inside the volume", p)
		}
		full := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(full, v, fm); err != nil {
			return err
		}
	}
	return nil
}

// containerMounts are the OCI mounts of a container: its volumeMounts plus the pod's etc files.
func (a *Agent) containerMounts(pod *corev1.Pod, c *corev1.Container, vols map[string]string) ([]specs.Mount, error) {
	etc := filepath.Join(a.podDir(string(pod.UID)), "etc")
	var ms []specs.Mount
	for _, vm := range c.VolumeMounts {
		src, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMounts %q: the pod has no volume of that name", vm.Name)
		}
		if vm.SubPath != "" {
			sp := path.Clean(vm.SubPath)
			if path.IsAbs(sp) || sp == ".." || strings.HasPrefix(sp, "../") {
				return nil, fmt.Errorf("volumeMounts %q: subPath %q must be relative and inside the volume", vm.Name, vm.SubPath)
			}
			src = filepath.Join(src, sp)
			if _, err := os.Stat(src); err != nil {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, fmt.Errorf("volumeMounts %q: subPath: %w", vm.Name, err)
				}
			}
		}
		opt := "rw"
		if vm.ReadOnly {
			opt = "ro"
		}
		ms = append(ms, specs.Mount{Destination: vm.MountPath, Type: "bind", Source: src, Options: []string{"rbind", opt}})
	}
	has := func(dst string) bool {
		for _, m := range ms {
			if m.Destination == dst {
				return true
			}
		}
		return false
	}
	for _, f := range []string{"resolv.conf", "hosts", "hostname"} {
		if !has("/etc/" + f) {
			ms = append(ms, specs.Mount{Destination: "/etc/" + f, Type: "bind", Source: filepath.Join(etc, f), Options: []string{"rbind", "rw"}})
		}
	}
	return ms, nil
}
