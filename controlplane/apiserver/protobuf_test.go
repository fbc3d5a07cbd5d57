package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

// client-go's typed clients may send protobuf bodies, DeleteOptions included.
func TestProtobufClient(t *testing.T) {
	env := testenv.Start(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	c := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pb"}, Data: map[string]string{"a": "b"}}
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create over protobuf: %v", err)
	}
	got, err := c.CoreV1().ConfigMaps("default").Get(ctx, "pb", metav1.GetOptions{})
	if err != nil || got.Data["a"] != "b" {
		t.Fatalf("get over protobuf: %v %v", got, err)
	}
	if err := c.CoreV1().ConfigMaps("default").Delete(ctx, "pb", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatalf("delete with a protobuf DeleteOptions body: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps("default").Get(ctx, "pb", metav1.GetOptions{}); err == nil {
		t.Fatal("still there after delete")
	}
}
