package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// LogsOptions are logs' flags.
type LogsOptions struct {
	Container string
	Follow    bool
	Tail      int64 // -1: all
}

// podContainer finds the pod in the current namespace and the container to talk to.
func (f *Factory) podContainer(ctx context.Context, pod, container string) (kubernetes.Interface, string, string, error) {
	kube, err := f.Kube()
	if err != nil {
		return nil, "", "", err
	}
	ns := f.Namespace()
	p, err := kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return nil, "", "", err
	}
	c, err := pickContainer(p, container)
	return kube, ns, c, err
}

// Logs streams a container's log through the API server's pods/log.
func (f *Factory) Logs(ctx context.Context, pod string, o LogsOptions) error {
	kube, ns, c, err := f.podContainer(ctx, pod, o.Container)
	if err != nil {
		return err
	}
	opts := &corev1.PodLogOptions{Container: c, Follow: o.Follow}
	if o.Tail >= 0 {
		opts.TailLines = &o.Tail
	}
	rc, err := kube.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return fmt.Errorf("logs of pod %s container %s: %w", pod, c, err)
	}
	defer rc.Close()
	if _, err := io.Copy(f.Out, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read logs: %w", err)
	}
	return nil
}

func pickContainer(p *corev1.Pod, want string) (string, error) {
	if want != "" {
		for _, c := range p.Spec.Containers {
			if c.Name == want {
				return want, nil
			}
		}
		for _, c := range p.Spec.InitContainers {
			if c.Name == want {
				return want, nil
			}
		}
		return "", fmt.Errorf("pod %s has no container %q: it has %s", p.Name, want, containerNames(p))
	}
	if len(p.Spec.Containers) == 1 {
		return p.Spec.Containers[0].Name, nil
	}
	if len(p.Spec.Containers) == 0 {
		return "", fmt.Errorf("pod %s has no containers", p.Name)
	}
	return "", fmt.Errorf("pod %s has several containers (%s): choose one with -c", p.Name, containerNames(p))
}

func containerNames(p *corev1.Pod) string {
	var s string
	for i, c := range p.Spec.Containers {
		if i > 0 {
			s += ", "
		}
		s += c.Name
	}
	return s
}

// ExecOptions are exec's flags.
type ExecOptions struct {
	Container string
	Stdin     bool
}

// Exec runs a command in a container through the API server's pods/exec, using skiff's framing
// (see DecodeExecStream), and returns the command's exit code as an ExitError.
func (f *Factory) Exec(ctx context.Context, pod string, command []string, o ExecOptions) error {
	if len(command) == 0 {
		return errors.New("no command: skiff exec POD -- CMD [ARGS...]")
	}
	kube, ns, c, err := f.podContainer(ctx, pod, o.Container)
	if err != nil {
		return err
	}
	params := url.Values{"container": {c}, "command": command}
	req := kube.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource("exec")
	for k, vs := range params {
		for _, v := range vs {
			req = req.Param(k, v)
		}
	}
	if o.Stdin {
		req = req.Body(io.NopCloser(f.In))
	} else {
		req = req.Body([]byte{})
	}
	rc, err := req.Stream(ctx)
	if err != nil {
		return fmt.Errorf("exec in pod %s container %s: %w", pod, c, err)
	}
	defer rc.Close()
	code, err := DecodeExecStream(rc, f.Out, f.ErrOut)
	if err != nil {
		return fmt.Errorf("exec in pod %s: %w", pod, err)
	}
	if code != 0 {
		return ErrSilent{Code: code}
	}
	return nil
}
