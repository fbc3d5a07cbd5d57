package storage

import (
	"errors"
	"fmt"
)

// ErrorCode classifies a storage error so the API server can map it to an HTTP status.
type ErrorCode int

const (
	ErrCodeNotFound                ErrorCode = iota + 1 // 404
	ErrCodeExists                                       // 409 AlreadyExists
	ErrCodeConflict                                     // 409 Conflict: precondition or resourceVersion mismatch
	ErrCodeGone                                         // 410: the revision was compacted
	ErrCodeInvalidObj                                   // the object cannot be encoded/decoded or is of the wrong type
	ErrCodeBadRequest                                   // malformed resourceVersion, continue token or key (400)
	ErrCodeTooLargeResourceVersion                      // a revision etcd has not reached yet (504 in Kubernetes)
)

func (c ErrorCode) String() string {
	switch c {
	case ErrCodeNotFound:
		return "NotFound"
	case ErrCodeExists:
		return "AlreadyExists"
	case ErrCodeConflict:
		return "Conflict"
	case ErrCodeGone:
		return "Gone"
	case ErrCodeInvalidObj:
		return "InvalidObject"
	case ErrCodeBadRequest:
		return "BadRequest"
	case ErrCodeTooLargeResourceVersion:
		return "TooLargeResourceVersion"
	}
	return fmt.Sprintf("ErrorCode(%d)", int(c))
}

// Error is the error type of every classified storage failure. Key is the etcd key (or prefix)
// concerned; ResourceVersion is the revision involved when there is one.
type Error struct {
	Code            ErrorCode
	Key             string
	ResourceVersion int64
	Msg             string
	Err             error // underlying cause, may be nil
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

func newErr(code ErrorCode, key string, rv int64, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Key: key, ResourceVersion: rv, Err: cause, Msg: fmt.Sprintf(format, args...)}
}

func errNotFound(key string) error {
	return newErr(ErrCodeNotFound, key, 0, nil, "key %q not found", key)
}

func errExists(key string, rv int64) error {
	return newErr(ErrCodeExists, key, rv, nil, "key %q already exists", key)
}

func errGone(key string, rv int64) error {
	return newErr(ErrCodeGone, key, rv, nil,
		"resourceVersion %d of %q has been compacted; list again to get a current resourceVersion", rv, key)
}

func codeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// IsNotFound reports whether err means the key does not exist.
func IsNotFound(err error) bool { return codeOf(err) == ErrCodeNotFound }

// IsExists reports whether err means Create found the key already present.
func IsExists(err error) bool { return codeOf(err) == ErrCodeExists }

// IsConflict reports whether err means a precondition (UID or resourceVersion) did not hold.
func IsConflict(err error) bool { return codeOf(err) == ErrCodeConflict }

// IsGone reports whether err means the requested revision has been compacted away.
func IsGone(err error) bool { return codeOf(err) == ErrCodeGone }

// IsInvalidObj reports whether err means an object could not be encoded or decoded, or was
// not of the type the caller asked for.
func IsInvalidObj(err error) bool { return codeOf(err) == ErrCodeInvalidObj }

// IsBadRequest reports whether err means the caller passed a malformed resourceVersion,
// continue token or key.
func IsBadRequest(err error) bool { return codeOf(err) == ErrCodeBadRequest }

// IsTooLargeResourceVersion reports whether err means the caller asked to read at a revision
// etcd has not reached yet.
func IsTooLargeResourceVersion(err error) bool { return codeOf(err) == ErrCodeTooLargeResourceVersion }
