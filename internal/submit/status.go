package submit

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// condition is one row of the contract's Submitted table: the Submitted status, and whether the task is
// reconciling, stalled or finished.
type condition struct {
	submitted metav1.ConditionStatus
	phase     v1alpha1.TaskPhase
	// readyReason is the Ready reason; the Submitted reason unless the job was started.
	readyReason                    string
	reconciling, stalled, finished bool
}

var conditions = map[string]condition{
	v1alpha1.ReasonQueued:               {submitted: metav1.ConditionUnknown, phase: v1alpha1.TaskPhasePending, reconciling: true},
	v1alpha1.ReasonSubmitting:           {submitted: metav1.ConditionUnknown, phase: v1alpha1.TaskPhasePending, reconciling: true},
	v1alpha1.ReasonOperationNotFound:    {submitted: metav1.ConditionUnknown, phase: v1alpha1.TaskPhasePending, reconciling: true},
	v1alpha1.ReasonSubmitOutcomeUnknown: {submitted: metav1.ConditionUnknown, phase: v1alpha1.TaskPhasePending, stalled: true},
	v1alpha1.ReasonAccepted:             {submitted: metav1.ConditionTrue, phase: v1alpha1.TaskPhasePending, readyReason: v1alpha1.ReasonPending, reconciling: true},
	v1alpha1.ReasonAdopted:              {submitted: metav1.ConditionTrue, phase: v1alpha1.TaskPhasePending, readyReason: v1alpha1.ReasonPending, reconciling: true},
	v1alpha1.ReasonSubmitRejected:       {submitted: metav1.ConditionFalse, phase: v1alpha1.TaskPhaseFailed, stalled: true, finished: true},
	v1alpha1.ReasonSubmitAbandoned:      {submitted: metav1.ConditionFalse, phase: v1alpha1.TaskPhaseFailed, stalled: true, finished: true},
	// A submission that can never be sent as written (a parameter overriding the backend's, a body too large).
	v1alpha1.ReasonTaskFailed: {submitted: metav1.ConditionFalse, phase: v1alpha1.TaskPhaseFailed, stalled: true, finished: true},
}

// statusFor computes the status of a task whose job is not tracked yet, for the Submitted reason and message,
// from its current status: a pure function, so the contract's table is tested without an API server. The
// submission record and task ID are set by the caller on the result.
func statusFor(task *v1alpha1.AsyncTask, st v1alpha1.AsyncTaskStatus, reason, message string, now time.Time) v1alpha1.AsyncTaskStatus {
	row, ok := conditions[reason]
	if !ok {
		row = conditions[v1alpha1.ReasonSubmitting]
	}
	st.ObservedGeneration = task.Generation
	st.Phase = row.phase
	st.Message = backend.OneLine(message, backend.MaxMessageLength)
	if row.finished && st.CompletionTime == nil {
		st.CompletionTime = &metav1.Time{Time: now.Truncate(time.Second)}
	}
	readyReason := row.readyReason
	if readyReason == "" {
		readyReason = reason
	}
	set := func(condType string, status metav1.ConditionStatus, reason string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: condType, Status: status, Reason: reason,
			Message: st.Message, ObservedGeneration: task.Generation, LastTransitionTime: metav1.NewTime(now)})
	}
	set(v1alpha1.ConditionReady, metav1.ConditionFalse, readyReason)
	setOrRemove := func(condType string, present bool, reason string) {
		if present {
			set(condType, metav1.ConditionTrue, reason)
		} else {
			meta.RemoveStatusCondition(&st.Conditions, condType)
		}
	}
	setOrRemove(v1alpha1.ConditionStalled, row.stalled, reason)
	setOrRemove(v1alpha1.ConditionReconciling, row.reconciling, readyReason)
	setOrRemove(v1alpha1.ConditionFinished, row.finished, reason)
	set(v1alpha1.ConditionSubmitted, row.submitted, reason)
	return st
}
