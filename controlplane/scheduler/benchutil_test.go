package scheduler

import (
	"context"
	"io"
	"log/slog"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

func newFactory(cl kubernetes.Interface) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactory(cl, 0)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func bgDelete(cl kubernetes.Interface, ns string) {
	_ = cl.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
}
