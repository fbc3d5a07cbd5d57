package apiserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiffnet/skiff/controlplane/server"
	"github.com/skiffnet/skiff/controlplane/testenv"
)

func frame(id byte, payload []byte) []byte {
	b := []byte{id, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// TestLogsAndExecProxy runs a fake agent with the serving cert from join and checks that the
// API server forwards logs and exec with the node's token.
func TestLogsAndExecProxy(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	jr := join(t, env, "n1")
	cert, err := tls.X509KeyPair([]byte(jr.ServingCertPEM), []byte(jr.ServingKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+jr.Token {
			http.Error(w, "bad token", 401)
			return
		}
		switch {
		case r.URL.Path == "/containerLogs/default/web/c":
			fmt.Fprintf(w, "line1\nline2 tail=%s follow=%s\n", r.URL.Query().Get("tailLines"), r.URL.Query().Get("follow"))
		case r.URL.Path == "/exec/default/web/c" && r.Method == "POST":
			in, _ := io.ReadAll(r.Body)
			w.Write(frame(1, []byte(strings.Join(r.URL.Query()["command"], " ")+":"+string(in))))
			w.Write(frame(3, []byte("0")))
		default:
			http.NotFound(w, r)
		}
	}))
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	agent.StartTLS()
	defer agent.Close()
	_, portStr, _ := net.SplitHostPort(agent.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	node, err = env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := env.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := pod("web")
	p.Spec.NodeName = "n1"
	if _, err := env.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tail := int64(5)
	logs, err := env.Client.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{TailLines: &tail, Follow: true}).DoRaw(ctx)
	if err != nil || string(logs) != "line1\nline2 tail=5 follow=true\n" {
		t.Fatalf("logs: %v %q", err, logs)
	}
	code, body := raw(t, env, "admin", "POST", "/api/v1/namespaces/default/pods/web/exec?command=echo&command=hi", "", "stdin-data")
	want := string(frame(1, []byte("echo hi:stdin-data"))) + string(frame(3, []byte("0")))
	if code != 200 || body != want {
		t.Fatalf("exec: %d %q", code, body)
	}
	if code, _ := raw(t, env, jr.Token, "POST", "/api/v1/namespaces/default/pods/web/exec?command=id", "", ""); code != 403 {
		t.Fatalf("exec with a node token: %d", code)
	}
}

func TestInsecurePort(t *testing.T) {
	if _, err := server.New(server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", InsecureListen: "0.0.0.0:0"}); err == nil {
		t.Fatal("insecure port on a non-loopback address accepted")
	}
	env := testenv.StartWith(t, server.Config{InsecureListen: "127.0.0.1:0"}, nil)
	resp, err := http.Get(env.Server.InsecureURL() + "/api/v1/namespaces/kube-system")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("insecure port: %d", resp.StatusCode)
	}
	// and the TLS port still needs a token
	cfg := rest.CopyConfig(env.Config)
	cfg.BearerToken = ""
	tr, _ := rest.TransportFor(cfg)
	resp, err = (&http.Client{Transport: tr}).Post(env.URL+"/api/v1/namespaces", "application/json", bytes.NewBufferString("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("TLS port without token: %d", resp.StatusCode)
	}
}
