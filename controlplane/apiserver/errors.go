package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiffnet/skiff/controlplane/storage"
)

// toStatus turns any error into the metav1.Status a Kubernetes client expects.
func toStatus(err error, gr schema.GroupResource, name string) *metav1.Status {
	var api apierrors.APIStatus
	if errors.As(err, &api) {
		st := api.Status()
		return &st
	}
	var se *storage.Error
	switch {
	case storage.IsNotFound(err):
		return status(apierrors.NewNotFound(gr, name))
	case storage.IsExists(err):
		return status(apierrors.NewAlreadyExists(gr, name))
	case storage.IsConflict(err):
		return status(apierrors.NewConflict(gr, name, errors.New("the object has been modified; please apply your changes to the latest version and try again")))
	case storage.IsGone(err):
		msg := "too old resource version"
		if errors.As(err, &se) {
			msg = fmt.Sprintf("too old resource version: %d", se.ResourceVersion)
		}
		return status(apierrors.NewResourceExpired(msg))
	case storage.IsBadRequest(err):
		return status(apierrors.NewBadRequest(err.Error()))
	case storage.IsTooLargeResourceVersion(err):
		return status(apierrors.NewTimeoutError("Too large resource version: "+err.Error(), 1))
	}
	if errors.Is(err, context.Canceled) {
		// The client went away (or the server is stopping): nothing went wrong here.
		slog.Debug("api request canceled", "resource", gr.String(), "name", name, "err", err)
	} else {
		slog.Error("api request failed", "resource", gr.String(), "name", name, "err", err)
	}
	return status(apierrors.NewInternalError(err))
}

func status(err *apierrors.StatusError) *metav1.Status {
	st := err.Status()
	return &st
}

func writeError(w http.ResponseWriter, err error, gr schema.GroupResource, name string) {
	writeStatus(w, toStatus(err, gr, name))
}

func writeStatus(w http.ResponseWriter, st *metav1.Status) {
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, st)
}

func invalid(kind schema.GroupKind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(kind, name, errs)
}

func badRequest(format string, args ...any) error {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}

func tooLarge() error {
	return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the request body is larger than %d bytes", maxBody))
}

func unsupportedMedia(mt string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body content type %q is not supported: use application/json, application/yaml or application/vnd.kubernetes.protobuf", mt),
	}}
}

func methodNotAllowed(method, what string) error {
	return apierrors.NewMethodNotSupported(schema.GroupResource{Resource: what}, method)
}
