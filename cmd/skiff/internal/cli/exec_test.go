package cli

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// fakeAPI serves a pod and its log and exec subresources the way the API server proxies them.
func fakeAPI(t *testing.T) (*Factory, *bytes.Buffer, *bytes.Buffer) {
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "side"}}}}
	// TLS: clientcmd sends tokens only over https.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == "GET" && r.URL.Path == "/api/v1/namespaces/ns/pods/p":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(pod)
		case r.Method == "GET" && r.URL.Path == "/api/v1/namespaces/ns/pods/p/log":
			q := r.URL.Query()
			io.WriteString(w, "log of "+q.Get("container")+" follow="+q.Get("follow")+" tail="+q.Get("tailLines")+"\n")
		case r.Method == "POST" && r.URL.Path == "/api/v1/namespaces/ns/pods/p/exec":
			q := r.URL.Query()
			in, _ := io.ReadAll(r.Body)
			w.Write(frame(1, q.Get("container")+": "+strings.Join(q["command"], " ")+"\n"))
			w.Write(frame(2, "stdin="+string(in)))
			w.Write(frame(3, "3"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	kc := clientcmdapi.NewConfig()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: srv.URL, CertificateAuthorityData: ca}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "tok"}
	kc.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "ns"}
	kc.CurrentContext = "x"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	f := NewFactory(&Globals{Kubeconfig: path})
	var out, errOut bytes.Buffer
	f.Out, f.ErrOut = &out, &errOut
	return f, &out, &errOut
}

func TestExecRequest(t *testing.T) {
	f, out, errOut := fakeAPI(t)
	f.In = strings.NewReader("hello")
	err := f.Exec(t.Context(), "p", []string{"sh", "-c", "exit 3"}, ExecOptions{Container: "side", Stdin: true})
	var silent ErrSilent
	if !errors.As(err, &silent) || silent.Code != 3 {
		t.Errorf("exit: %v, want code 3", err)
	}
	if out.String() != "side: sh -c exit 3\n" || errOut.String() != "stdin=hello" {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}
	if err := f.Exec(t.Context(), "p", []string{"true"}, ExecOptions{}); err == nil || !strings.Contains(err.Error(), "choose one with -c") {
		t.Errorf("two containers without -c: %v", err)
	}
}

func TestLogsRequest(t *testing.T) {
	f, out, _ := fakeAPI(t)
	if err := f.Logs(t.Context(), "p", LogsOptions{Container: "app", Follow: true, Tail: 5}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "log of app follow=true tail=5\n" {
		t.Errorf("logs: %q", out)
	}
	if err := f.Logs(t.Context(), "p", LogsOptions{Container: "nope", Tail: -1}); err == nil || !strings.Contains(err.Error(), `no container "nope"`) {
		t.Errorf("bad container: %v", err)
	}
}

func TestKubeconfigResolution(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("SKIFF_KUBECONFIG", "")
	g := &Globals{}
	if p := g.KubeconfigPath(); p != "" {
		t.Errorf("nothing set: %q", p)
	}
	home := filepath.Join(dir, ".skiff", "kubeconfig")
	os.MkdirAll(filepath.Dir(home), 0o755)
	os.WriteFile(home, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
	if p := g.KubeconfigPath(); p != home {
		t.Errorf("~/.skiff/kubeconfig: %q", p)
	}
	t.Setenv("SKIFF_KUBECONFIG", "/env/path")
	if p := g.KubeconfigPath(); p != "/env/path" {
		t.Errorf("$SKIFF_KUBECONFIG: %q", p)
	}
	g.Kubeconfig = "/flag/path"
	if p := g.KubeconfigPath(); p != "/flag/path" {
		t.Errorf("--kubeconfig: %q", p)
	}
	if _, err := g.RESTConfig(); err == nil || !strings.Contains(err.Error(), "/flag/path") {
		t.Errorf("missing file: %v", err)
	}
}
