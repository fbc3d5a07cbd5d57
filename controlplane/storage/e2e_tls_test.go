package storage_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/storage"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testTLS holds the PEM files of a throwaway CA, an etcd server cert and a client cert.
type testTLS struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestTLS(t *testing.T) *testTLS {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff-test-etcd-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	tt := &testTLS{ca: filepath.Join(dir, "ca.pem")}
	writePEM(t, tt.ca, "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		cert, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, cert, "CERTIFICATE", der)
		writePEM(t, keyPath, "PRIVATE KEY", kder)
		return cert, keyPath
	}
	tt.serverCert, tt.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	tt.clientCert, tt.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return tt
}

// OpenEtcd with client TLS files talks to an etcd that demands client certificates.
func TestE2EExternalEtcdTLS(t *testing.T) {
	privtest.Require(t, privtest.EtcdBinary)
	tt := newTestTLS(t)
	members := startEtcdCluster(t, 1, tt)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := storage.OpenEtcd(ctx, storage.EtcdConfig{
		Endpoints: endpoints(members), CertFile: tt.clientCert, KeyFile: tt.clientKey, CAFile: tt.ca,
	})
	if err != nil {
		t.Fatalf("open etcd over TLS: %v", err)
	}
	defer e.Close()
	s := storage.New(e.Client, storage.DefaultCodec())
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "default"}}
	if err := s.Create(ctx, "/registry/pods/default/tls", pod, &corev1.Pod{}, 0); err != nil {
		t.Fatalf("create over TLS: %v", err)
	}

	// Without a client certificate the server refuses us, and OpenEtcd says so.
	short, scancel := context.WithTimeout(ctx, 3*time.Second)
	defer scancel()
	if e2, err := storage.OpenEtcd(short, storage.EtcdConfig{Endpoints: endpoints(members), CAFile: tt.ca}); err == nil {
		e2.Close()
		t.Fatal("OpenEtcd without a client certificate succeeded against --client-cert-auth")
	}
}
