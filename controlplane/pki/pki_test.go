package pki

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestLoadReusesAndRestricts(t *testing.T) {
	dir := t.TempDir()
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.5")}
	b1, err := Load(dir, ips, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Load(dir, ips, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if b1.AdminToken != b2.AdminToken || b1.JoinToken != b2.JoinToken || string(b1.CA.CertPEM) != string(b2.CA.CertPEM) ||
		string(b1.ServingCert.Certificate[0]) != string(b2.ServingCert.Certificate[0]) {
		t.Fatal("second Load did not reuse the bundle")
	}
	// a new SAN re-issues the serving cert but keeps the CA
	b3, err := Load(dir, append(ips, net.ParseIP("10.0.0.6")), []string{"localhost"})
	if err != nil || string(b3.CA.CertPEM) != string(b1.CA.CertPEM) || string(b3.ServingCert.Certificate[0]) == string(b1.ServingCert.Certificate[0]) {
		t.Fatalf("SAN change: %v", err)
	}
	for _, f := range []string{CACertFile, CAKeyFile, ServingCertFile, ServingKeyFile, AdminTokenFile, JoinTokenFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v", f, err, st.Mode())
		}
	}
	kc := filepath.Join(dir, KubeconfigFile)
	if err := WriteKubeconfig(kc, "https://127.0.0.1:6443", b1.CA.CertPEM, b1.AdminToken); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil || cfg.BearerToken != b1.AdminToken || cfg.Host != "https://127.0.0.1:6443" || len(cfg.CAData) == 0 {
		t.Fatalf("kubeconfig: %v %+v", err, cfg)
	}
	if st, _ := os.Stat(kc); st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v", st.Mode())
	}
}
