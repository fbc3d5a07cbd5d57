package apiserver

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiffnet/skiff/controlplane/pki"
	"github.com/skiffnet/skiff/controlplane/storage"
)

// JoinRequest is the body of POST /skiff/v1/join.
type JoinRequest struct {
	NodeName  string   `json:"nodeName"`
	Addresses []string `json:"addresses"`
}

// JoinResponse answers a join: the node's token and its agent's serving certificate.
type JoinResponse struct {
	Token          string `json:"token"`
	CAPEM          string `json:"caPEM"`
	ServingCertPEM string `json:"servingCertPEM"`
	ServingKeyPEM  string `json:"servingKeyPEM"`
}

// join registers a node: with the join token for a new node name, or with the node's own
// token to renew its credentials.
func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, methodNotAllowed(r.Method, "join"), groupResource("join"), "")
		return
	}
	tok := bearer(r)
	isJoin := tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.JoinToken)) == 1
	tokNode, isNode := "", false
	if !isJoin && tok != "" {
		tokNode, isNode = s.nodeTokens.Lookup(r.Context(), tok)
	}
	if !isJoin && !isNode {
		writeStatus(w, status(apierrors.NewUnauthorized("join needs the cluster's join token (the join-token file in the server's data dir) or the node's own token")))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, err, groupResource("join"), "")
		return
	}
	var req JoinRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, badRequest(`decode join request: %v: send {"nodeName":"n1","addresses":["10.0.0.2"]}`, err), groupResource("join"), "")
		return
	}
	if msgs := validation.IsDNS1123Subdomain(req.NodeName); len(msgs) > 0 {
		writeError(w, badRequest("nodeName %q: %v", req.NodeName, msgs), groupResource("join"), "")
		return
	}
	var ips []net.IP
	for _, a := range req.Addresses {
		ip := net.ParseIP(a)
		if ip == nil {
			writeError(w, badRequest("addresses: %q is not an IP address", a), groupResource("join"), "")
			return
		}
		ips = append(ips, ip)
	}
	if isNode && tokNode != req.NodeName {
		writeStatus(w, status(apierrors.NewForbidden(groupResource("nodes"), req.NodeName, fmt.Errorf("the token belongs to node %q", tokNode))))
		return
	}
	if !isNode {
		err := s.store.Get(r.Context(), "/registry/nodes/"+req.NodeName, &corev1.Node{})
		if err == nil {
			writeStatus(w, status(apierrors.NewConflict(groupResource("nodes"), req.NodeName,
				fmt.Errorf("node %s is already registered: join with that node's own token, or have the admin delete the Node first", req.NodeName))))
			return
		}
		if !storage.IsNotFound(err) {
			writeError(w, err, groupResource("nodes"), req.NodeName)
			return
		}
		tok = pki.RandomToken()
		if err := s.nodeTokens.Set(r.Context(), req.NodeName, tok); err != nil {
			writeError(w, err, groupResource("nodes"), req.NodeName)
			return
		}
	}
	certPEM, keyPEM, err := s.opts.CA.Issue("system:node:"+req.NodeName, ips, []string{req.NodeName})
	if err != nil {
		writeError(w, err, groupResource("nodes"), req.NodeName)
		return
	}
	writeJSON(w, http.StatusCreated, &JoinResponse{Token: tok, CAPEM: string(s.opts.CA.CertPEM), ServingCertPEM: string(certPEM), ServingKeyPEM: string(keyPEM)})
}
