package kubelet

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// Credentials are what a join returns; they are kept in DataDir/credentials (0600).
type Credentials struct {
	Token          string `json:"token"`
	CAPEM          string `json:"caPEM"`
	ServingCertPEM string `json:"servingCertPEM"`
	ServingKeyPEM  string `json:"servingKeyPEM"`
	// Addresses the serving cert was issued for (not part of the join answer).
	Addresses []string `json:"addresses,omitempty"`
}

type joinRequest struct {
	NodeName  string   `json:"nodeName"`
	Addresses []string `json:"addresses"`
}

func credentialsPath(dataDir string) string { return filepath.Join(dataDir, "credentials.json") }

// loadOrJoin reuses saved credentials or joins the cluster with the join token. Saved
// credentials for other addresses are renewed by joining with the node token.
func loadOrJoin(ctx context.Context, server, joinToken, node string, addrs []string, dataDir string) (*Credentials, error) {
	var saved *Credentials
	if b, err := os.ReadFile(credentialsPath(dataDir)); err == nil {
		var c Credentials
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("read %s: %w (delete it and the Node to re-join)", credentialsPath(dataDir), err)
		}
		if slices.Equal(c.Addresses, addrs) {
			return &c, nil
		}
		saved = &c
	}
	token, pool := joinToken, (*x509.CertPool)(nil)
	if saved != nil {
		token = saved.Token
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(saved.CAPEM))
	}
	c, err := joinRetrying(ctx, server, token, node, addrs, pool)
	if err != nil {
		return nil, err
	}
	c.Addresses = addrs
	b, _ := json.Marshal(c)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	tmp := credentialsPath(dataDir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp, credentialsPath(dataDir)); err != nil {
		return nil, fmt.Errorf("save credentials: %w", err)
	}
	return c, nil
}

// joinRetrying joins, retrying while the server cannot be reached (an agent may start before
// its server listens, as under `skiff up`); answers from the server are final.
func joinRetrying(ctx context.Context, server, token, node string, addrs []string, pool *x509.CertPool) (*Credentials, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		c, err := join(ctx, server, token, node, addrs, pool)
		var unreachable *joinUnreachableError
		if err == nil || !errors.As(err, &unreachable) || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// joinUnreachableError is a join that never got an answer from the server.
type joinUnreachableError struct{ err error }

func (e *joinUnreachableError) Error() string { return e.err.Error() }
func (e *joinUnreachableError) Unwrap() error { return e.err }

// join posts to /skiff/v1/join. Without a known CA the first join cannot verify the server
// (the join token is the shared secret); the CA it returns then must verify the server, and
// everything afterwards is verified against it.
func join(ctx context.Context, server, token, node string, addrs []string, pool *x509.CertPool) (*Credentials, error) {
	body, _ := json.Marshal(joinRequest{NodeName: node, Addresses: addrs})
	var tlsCfg *tls.Config
	if pool != nil {
		tlsCfg = &tls.Config{RootCAs: pool}
	} else {
		tlsCfg = &tls.Config{InsecureSkipVerify: true}
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/skiff/v1/join", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("join: server URL %q: %w", server, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &joinUnreachableError{fmt.Errorf("join %s: %w", server, err)}
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusConflict:
		return nil, fmt.Errorf("join: node %q is already registered and this agent has no credentials for it (delete the Node with `skiff delete node %s`, or restore the agent's --data-dir)", node, node)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("join: the server refused the token (%d): check --token against the server's join token", resp.StatusCode)
	case resp.StatusCode/100 != 2:
		return nil, fmt.Errorf("join: server answered %d: %s", resp.StatusCode, strings.TrimSpace(string(rb)))
	}
	var c Credentials
	if err := json.Unmarshal(rb, &c); err != nil {
		return nil, fmt.Errorf("join: decode answer: %w", err)
	}
	if c.Token == "" || c.CAPEM == "" || c.ServingCertPEM == "" || c.ServingKeyPEM == "" {
		return nil, errors.New("join: the answer lacks token, caPEM, servingCertPEM or servingKeyPEM")
	}
	if _, err := tls.X509KeyPair([]byte(c.ServingCertPEM), []byte(c.ServingKeyPEM)); err != nil {
		return nil, fmt.Errorf("join: serving cert: %w", err)
	}
	if pool == nil && resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM([]byte(c.CAPEM)) {
			return nil, errors.New("join: caPEM holds no certificate")
		}
		inter := x509.NewCertPool()
		for _, ic := range resp.TLS.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := resp.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: p, Intermediates: inter}); err != nil {
			return nil, fmt.Errorf("join: the server's certificate is not signed by the CA it returned: %w", err)
		}
	}
	return &c, nil
}

// restConfig is the node's client config.
func (c *Credentials) restConfig(server string) *rest.Config {
	return &rest.Config{
		Host:            server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: []byte(c.CAPEM)},
		// Pod status updates and events of many pods starting at once must not queue.
		QPS:       200,
		Burst:     400,
		UserAgent: "skiff-agent",
		// JSON both ways: the API server speaks JSON.
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"},
	}
}
