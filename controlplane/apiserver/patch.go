package apiserver

import (
	"encoding/json"
	"net/http"

	jsonpatch "github.com/evanphx/json-patch/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

func (s *Server) patch(w http.ResponseWriter, r *http.Request, ri *reqInfo, dryRun bool) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	pt := types.PatchType(mediaType(r))
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		writeError(w, unsupportedMediaMsg("server-side apply is not supported: use kubectl apply without --server-side (strategic merge patch)"), ri.res.gr(), ri.name)
		return
	default:
		writeError(w, unsupportedMediaMsg("patch content type "+string(pt)+" is not supported: use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json"), ri.res.gr(), ri.name)
		return
	}
	var jp jsonpatch.Patch
	if pt == types.JSONPatchType {
		if jp, err = jsonpatch.DecodePatch(body); err != nil {
			writeError(w, badRequest("decode JSON patch: %v", err), ri.res.gr(), ri.name)
			return
		}
	} else if !json.Valid(body) {
		writeError(w, badRequest("the patch is not valid JSON"), ri.res.gr(), ri.name)
		return
	}
	gvk, newView := ri.res.gvk(), ri.res.newObj
	if ri.sub == "scale" {
		gvk, newView = scaleGVK, newScale
	}
	out, _, err := s.doUpdate(r.Context(), ri, dryRun, func(cur runtime.Object) (runtime.Object, error) {
		cur.GetObjectKind().SetGroupVersionKind(gvk)
		doc, err := json.Marshal(cur)
		if err != nil {
			return nil, err
		}
		var patched []byte
		switch pt {
		case types.JSONPatchType:
			patched, err = jp.Apply(doc)
		case types.MergePatchType:
			patched, err = jsonpatch.MergePatch(doc, body)
		case types.StrategicMergePatchType:
			patched, err = strategicpatch.StrategicMergePatch(doc, body, newView())
		}
		if err != nil {
			return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
				Reason: metav1.StatusReasonInvalid, Message: "apply " + string(pt) + ": " + err.Error()}}
		}
		return decodeBytes(patched, "application/json", gvk, newView())
	})
	s.writeUpdateResult(w, ri, out, false, err)
}

func unsupportedMediaMsg(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason: metav1.StatusReasonUnsupportedMediaType, Message: msg}}
}
