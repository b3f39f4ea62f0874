package controller

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// TestEveryErrorKindHasOneReasonForTheTaskTheBackendAndTheMetrics: the one classification gives each kind its
// task reason, backend Ready reason and metrics outcome, the label values docs/design.md lists.
func TestEveryErrorKindHasOneReasonForTheTaskTheBackendAndTheMetrics(t *testing.T) {
	type want struct {
		TaskReason, FailureReason, BackendReason, Outcome string
		Retry                                             retryClass
	}
	cases := map[string]struct {
		err  error
		want want
	}{
		"an unclassified error is transient": {errors.New("boom"),
			want{v1alpha1.ReasonBackendUnavailable, "", v1alpha1.ReasonUnreachable, "Transient", retryBackoff}},
		"transient": {backend.Errorf(backend.KindTransient, "x"),
			want{v1alpha1.ReasonBackendUnavailable, "", v1alpha1.ReasonUnreachable, "Transient", retryBackoff}},
		"authentication": {backend.Errorf(backend.KindAuthentication, "x"),
			want{v1alpha1.ReasonAuthenticationFailed, "", v1alpha1.ReasonAuthenticationFailed, "Authentication", retryBackoff}},
		"vendor has no such task": {backend.Errorf(backend.KindNotFound, "x"),
			want{v1alpha1.ReasonBackendUnavailable, v1alpha1.ReasonTaskNotFound, v1alpha1.ReasonUnreachable, "NotFound", retryFailAfterRepeats}},
		"terminal": {backend.Errorf(backend.KindTerminal, "x"),
			want{"", v1alpha1.ReasonTaskFailed, v1alpha1.ReasonUnreachable, "Terminal", retryFail}},
		"invalid config": {backend.Errorf(backend.KindInvalidConfig, "x"),
			want{v1alpha1.ReasonBackendUnavailable, "", v1alpha1.ReasonInvalidConfig, "InvalidConfig", retryBackoff}},
		"backend not found": {backend.Errorf(backend.KindBackendNotFound, "x"),
			want{v1alpha1.ReasonBackendNotFound, "", v1alpha1.ReasonBackendNotFound, "BackendNotFound", retryBackoff}},
		"secret not found": {backend.Errorf(backend.KindSecretNotFound, "x"),
			want{v1alpha1.ReasonBackendUnavailable, "", v1alpha1.ReasonSecretNotFound, "SecretNotFound", retryBackoff}},
		"API server unreachable": {backend.Errorf(backend.KindUnreachable, "x"),
			want{v1alpha1.ReasonBackendUnavailable, "", v1alpha1.ReasonUnreachable, "Unreachable", retryBackoff}},
		"namespace not allowed": {backend.Errorf(backend.KindNotAllowed, "x"),
			want{v1alpha1.ReasonBackendNotAllowed, "", v1alpha1.ReasonBackendNotAllowed, "BackendNotAllowed", retryStall}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := classify(tc.err)
			got := want{c.taskReason, c.failureReason, c.backendReason, c.outcome, c.retry}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("classify(%v) -want +got:\n%s", tc.err, diff)
			}
		})
	}
}
