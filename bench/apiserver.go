package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffnet/skiff/controlplane/server"
)

// startAPIServer runs a real skiff API server on embedded etcd in a temporary data dir, on
// loopback, for the benchmarks that need the control plane. stop shuts it down and removes
// the data dir.
func startAPIServer(ctx context.Context) (srv *server.Server, client kubernetes.Interface, stop func(), err error) {
	dir, err := os.MkdirTemp("", "skiff-bench-api-")
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err = server.New(server.Config{DataDir: dir, Listen: "127.0.0.1:0", AdvertiseAddress: "127.0.0.1"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("control plane: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stop = func() { cancel(); <-done; os.RemoveAll(dir) }
	select {
	case <-srv.Ready():
	case err := <-done:
		done <- err
		stop()
		return nil, nil, nil, fmt.Errorf("control plane stopped before it was ready: %w", err)
	case <-time.After(90 * time.Second):
		stop()
		return nil, nil, nil, errors.New("control plane not ready after 90s")
	}
	rc := srv.AdminConfig()
	rc.QPS, rc.Burst = 5000, 10000
	client, err = kubernetes.NewForConfig(rc)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return srv, client, stop, nil
}

// createServices stores the set's Services and EndpointSlices (and their namespace) through
// the API, 16 requests at a time.
func createServices(ctx context.Context, client kubernetes.Interface, set *ServiceSet) error {
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", Namespace, err)
	}
	sem := make(chan struct{}, 16)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for i := range set.Services {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			svc, slice := set.Services[i], set.Slices[i]
			_, err := client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
			if err == nil {
				_, err = client.DiscoveryV1().EndpointSlices(slice.Namespace).Create(ctx, slice, metav1.CreateOptions{})
			}
			if err != nil {
				select {
				case errc <- fmt.Errorf("create service %s: %w", svc.Name, err):
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
