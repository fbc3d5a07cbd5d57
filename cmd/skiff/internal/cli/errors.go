package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExitError carries an exit code; cmd/skiff turns it into the process's status.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ErrSilent is an error whose message has already been printed.
type ErrSilent struct{ Code int }

func (e ErrSilent) Error() string { return "" }

// Explain rewrites client errors into one clear message saying what went wrong and what to do.
func Explain(err error, host string) error {
	if err == nil {
		return nil
	}
	var silent ErrSilent
	if errors.As(err, &silent) {
		return err
	}
	if msg, ok := explainStatus(err); ok {
		return errors.New(msg)
	}
	if host == "" {
		host = "the API server"
	}
	var x509u x509.UnknownAuthorityError
	var x509h x509.HostnameError
	var x509c x509.CertificateInvalidError
	switch {
	case errors.As(err, &x509u), errors.As(err, &x509h), errors.As(err, &x509c),
		strings.Contains(err.Error(), "x509:"):
		return fmt.Errorf("TLS verification of %s failed (%v): the kubeconfig's certificate-authority-data does not match the server; get a fresh kubeconfig from the server", host, rootCause(err))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach the API server at %s: connection refused; is `skiff server` running and does --kubeconfig point at it?", host)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%v: the API server at %s did not answer in time", rootCause(err), host)
	}
	// Only network errors: a syscall.Errno (e.g. a missing file) also satisfies net.Error.
	var oe *net.OpError
	var ue *url.Error
	var de *net.DNSError
	if errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &de) {
		return fmt.Errorf("cannot reach the API server at %s: %v; is `skiff server` running and does --kubeconfig point at it?", host, rootCause(err))
	}
	return err
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// explainStatus formats API status errors the way kubectl does, with one line per field cause.
func explainStatus(err error) (string, bool) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return "", false
	}
	st := se.Status()
	// Keep our own context around the server's message, e.g. "document 2: ".
	prefix, suffix := "", ""
	if i := strings.Index(err.Error(), st.Message); i >= 0 && st.Message != "" {
		prefix, suffix = err.Error()[:i], err.Error()[i+len(st.Message):]
	}
	msg, ok := explainStatusMessage(st, prefix)
	return msg + suffix, ok
}

func explainStatusMessage(st metav1.Status, prefix string) (string, bool) {
	switch st.Code {
	case 401:
		return prefix + "the server rejected the credentials (401 Unauthorized): the token in the kubeconfig is wrong or expired; copy a fresh kubeconfig from the server's data dir", true
	case 403:
		return prefix + "forbidden (403): " + st.Message, true
	case 422:
		var b strings.Builder
		b.WriteString(prefix)
		b.WriteString(invalidHeadline(st))
		for _, c := range causes(st) {
			fmt.Fprintf(&b, "\n  * %s", c)
		}
		return b.String(), true
	}
	switch st.Reason {
	case metav1.StatusReasonNotFound, metav1.StatusReasonAlreadyExists, metav1.StatusReasonConflict:
		return prefix + st.Message, true
	}
	reason := string(st.Reason)
	if reason == "" {
		reason = "Failure"
	}
	return fmt.Sprintf("%s%s (server: %d %s)", prefix, st.Message, st.Code, reason), true
}

func invalidHeadline(st metav1.Status) string {
	if st.Details != nil && st.Details.Name != "" {
		kind := st.Details.Kind
		if st.Details.Group != "" {
			kind += "." + st.Details.Group
		}
		return fmt.Sprintf("the %s %q is invalid:", kind, st.Details.Name)
	}
	msg := st.Message
	if i := strings.Index(msg, ": "); i > 0 && st.Details != nil && len(st.Details.Causes) > 0 {
		msg = msg[:i]
	}
	return strings.TrimSuffix(msg, ":") + ":"
}

func causes(st metav1.Status) []string {
	if st.Details == nil || len(st.Details.Causes) == 0 {
		if st.Message != "" {
			return []string{st.Message}
		}
		return nil
	}
	var out []string
	for _, c := range st.Details.Causes {
		switch {
		case c.Field != "" && !strings.HasPrefix(c.Message, c.Field):
			out = append(out, c.Field+": "+c.Message)
		default:
			out = append(out, c.Message)
		}
	}
	return out
}
