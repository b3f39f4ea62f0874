package controller

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

const (
	// maxResultBytes is the largest result kept in status.result.
	maxResultBytes = 64 << 10
	// notFoundPollsBeforeFailure is how many "no such task" answers in a row fail a task.
	notFoundPollsBeforeFailure = 3
)

// pollOutcome is what one pass learned: an observation, or why there is none; both nil when the pass did
// not poll.
type pollOutcome struct {
	// observation is set when the vendor answered about the task.
	observation *backend.Observation
	// err is a poll error, or why the backend could not be used (*backend.Error, classified by classify).
	err error
}

// statusFromOutcome computes a task's next status from its current status, what this pass learned, why its
// result was not written to its resultConfigMap (resultNote, empty when it was or there was none) and the
// time. It is a pure function of its arguments, so the contract's tables can be tested without an API server;
// conditions move their LastTransitionTime to now.
func statusFromOutcome(task *v1alpha1.AsyncTask, outcome pollOutcome, resultNote string, now time.Time) v1alpha1.AsyncTaskStatus {
	st := *task.Status.DeepCopy()
	st.ObservedGeneration = task.Generation
	if st.Phase.Finished() {
		return st
	}
	if st.TaskID == "" {
		st.TaskID = task.Spec.TaskID
	}
	nowTime := metav1.NewTime(now.Truncate(time.Second))
	failureReason := ""
	waitingReason := ""
	switch {
	case outcome.observation != nil:
		failureReason = applyObservation(&st, *outcome.observation, nowTime)
	case outcome.err != nil:
		failureReason, waitingReason = applyError(&st, outcome.err)
	default:
		// Not polled this pass: only the deadlines may change the status.
		waitingReason = readyReasonOf(st.Conditions)
	}
	if st.Phase == "" {
		st.Phase = v1alpha1.TaskPhasePending
	}
	if !st.Phase.Finished() && deadlineExceeded(task, now) {
		st.Phase = v1alpha1.TaskPhaseFailed
		st.Message = fmt.Sprintf("Task did not finish within activeDeadlineSeconds (%ds)", *task.Spec.ActiveDeadlineSeconds)
		failureReason = v1alpha1.ReasonDeadlineExceeded
	}
	if st.Phase.Finished() && st.CompletionTime == nil {
		st.CompletionTime = &nowTime
	}
	if st.Phase == v1alpha1.TaskPhaseSucceeded {
		st.Progress = ptr.To[int32](100)
	}
	if resultNote != "" {
		st.Message = appendSentence(st.Message, resultNote)
	}
	setConditions(&st, task, failureReason, waitingReason, now)
	return st
}

// applyObservation copies a vendor observation into the status and returns the failure reason when the vendor
// says the task failed.
func applyObservation(st *v1alpha1.AsyncTaskStatus, obs backend.Observation, now metav1.Time) string {
	// Bounded before comparing, so that a long status word compares equal to the one stored.
	obs.VendorStatus = backend.Truncate(obs.VendorStatus, backend.MaxWordLength)
	obs.TaskName = backend.OneLine(obs.TaskName, backend.MaxWordLength)
	obs.Message = backend.OneLine(obs.Message, backend.MaxMessageLength)
	if st.LastProgressTime == nil || obs.VendorStatus != st.VendorStatus || !equalProgress(obs.Progress, st.Progress) {
		st.LastProgressTime = &now
	}
	st.ConsecutiveErrors = 0
	st.ConsecutiveNotFound = 0
	st.Phase = obs.Phase
	st.VendorStatus = obs.VendorStatus
	st.Progress = clampProgress(obs.Progress)
	st.Message = obs.Message
	st.TaskName = obs.TaskName
	setResult(st, obs.Result)
	switch {
	case obs.StartTime != nil:
		st.StartTime = ptr.To(metav1.NewTime(*obs.StartTime))
	case st.StartTime == nil:
		st.StartTime = &now
	}
	if obs.CompletionTime != nil && obs.Phase.Finished() {
		st.CompletionTime = ptr.To(metav1.NewTime(*obs.CompletionTime))
	}
	if obs.Phase == v1alpha1.TaskPhaseFailed {
		if st.Message == "" {
			st.Message = "The vendor reports the task failed"
		}
		return v1alpha1.ReasonTaskFailed
	}
	return ""
}

// applyError records a failed pass, keeping the last good observation. It returns the failure reason when the
// error ends the task, or else the reason the task is waiting.
func applyError(st *v1alpha1.AsyncTaskStatus, err error) (failureReason, waitingReason string) {
	st.Message = errorMessage(err)
	class := classify(err)
	if class.retry != retryFailAfterRepeats {
		st.ConsecutiveNotFound = 0
	}
	if class.retry == retryStall {
		return "", class.taskReason // nothing was asked of the vendor: not a backend error
	}
	st.ConsecutiveErrors++
	switch class.retry {
	case retryFail:
		st.Phase = v1alpha1.TaskPhaseFailed
		return class.failureReason, ""
	case retryFailAfterRepeats:
		st.ConsecutiveNotFound++
		if st.ConsecutiveNotFound >= notFoundPollsBeforeFailure {
			st.Phase = v1alpha1.TaskPhaseFailed
			st.Message = fmt.Sprintf("The vendor does not know this task (%d answers in a row): %s", st.ConsecutiveNotFound, st.Message)
			return class.failureReason, ""
		}
	}
	return "", class.taskReason
}

func setResult(st *v1alpha1.AsyncTaskStatus, result json.RawMessage) {
	switch {
	case len(result) == 0:
		st.Result, st.ResultTruncated = nil, false
	case len(result) > maxResultBytes:
		st.Result, st.ResultTruncated = nil, true
	default:
		st.Result, st.ResultTruncated = &v1alpha1.JSON{Raw: result}, false
	}
}

// statusEquality compares statuses the way the API server stores them: times to the second and results as
// JSON values, since the server re-encodes a result with its keys sorted.
var statusEquality = conversion.EqualitiesOrDie(
	func(a, b metav1.Time) bool { return a.UTC().Truncate(time.Second).Equal(b.UTC().Truncate(time.Second)) },
	func(a, b v1alpha1.JSON) bool { return jsonValueEqual(a.Raw, b.Raw) },
)

func jsonValueEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func clampProgress(p *int32) *int32 {
	if p == nil {
		return nil
	}
	return ptr.To(min(max(*p, 0), 100))
}

func equalProgress(a, b *int32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func deadlineExceeded(task *v1alpha1.AsyncTask, now time.Time) bool {
	d := task.Spec.ActiveDeadlineSeconds
	return d != nil && now.Sub(task.CreationTimestamp.Time) >= time.Duration(*d)*time.Second
}

func progressDeadlineExceeded(task *v1alpha1.AsyncTask, st *v1alpha1.AsyncTaskStatus, now time.Time) bool {
	d := task.Spec.ProgressDeadlineSeconds
	return d != nil && st.LastProgressTime != nil && now.Sub(st.LastProgressTime.Time) >= time.Duration(*d)*time.Second
}

// conditionOrder lists Stalled before Reconciling: kstatus decides by whichever of the two it finds True first,
// and a running task past its progress deadline has both, which must read as stalled.
var conditionOrder = map[string]int{
	v1alpha1.ConditionReady: 0, v1alpha1.ConditionStalled: 1, v1alpha1.ConditionReconciling: 2, v1alpha1.ConditionFinished: 3,
	v1alpha1.ConditionSubmitted: 4,
}

// setConditions writes the kstatus conditions of the contract's table, in conditionOrder.
func setConditions(st *v1alpha1.AsyncTaskStatus, task *v1alpha1.AsyncTask, failureReason, waitingReason string, now time.Time) {
	defer func() {
		slices.SortStableFunc(st.Conditions, func(a, b metav1.Condition) int {
			return cmp.Compare(conditionOrder[a.Type], conditionOrder[b.Type])
		})
	}()
	gen := task.Generation
	set := func(condType string, status metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: condType, Status: status, Reason: reason, Message: message, ObservedGeneration: gen,
			// Kept by SetStatusCondition unless the status flips.
			LastTransitionTime: metav1.NewTime(now),
		})
	}
	st.Message = backend.OneLine(st.Message, backend.MaxMessageLength)
	message := st.Message
	switch st.Phase {
	case v1alpha1.TaskPhaseSucceeded:
		if message == "" {
			message = "The task succeeded"
		}
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, message)
		set(v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, message)
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
	case v1alpha1.TaskPhaseFailed:
		if failureReason == "" {
			failureReason = v1alpha1.ReasonTaskFailed
		}
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, failureReason, message)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, failureReason, message)
		set(v1alpha1.ConditionFinished, metav1.ConditionTrue, failureReason, message)
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	default:
		reason := waitingReason
		if reason == "" {
			reason = string(st.Phase)
		}
		if message == "" {
			message = fmt.Sprintf("The task is %s", map[v1alpha1.TaskPhase]string{
				v1alpha1.TaskPhasePending: "waiting to start", v1alpha1.TaskPhaseRunning: "running"}[st.Phase])
		}
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionFinished)
		if reason == v1alpha1.ReasonBackendNotAllowed {
			// Not polled until the backend's selector or the namespace's labels change: stalled, not finished.
			set(v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
			meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
			return
		}
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, message)
		if progressDeadlineExceeded(task, st, now) {
			set(v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonProgressDeadlineExceeded,
				fmt.Sprintf("Neither progress nor vendor status changed for progressDeadlineSeconds (%ds)", *task.Spec.ProgressDeadlineSeconds))
		} else {
			meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
		}
	}
}
