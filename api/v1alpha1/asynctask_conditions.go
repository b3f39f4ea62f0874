package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Readers of an AsyncTask's conditions, for controllers that wait on tasks. They read the conditions, not
// the phase: the operator writes both in one status write, and the conditions are what kstatus, kubectl wait
// and Flux read too. A task whose status the operator has not written yet is neither finished nor ready.

// FinishedCondition returns the task's Finished condition, or nil while the task has none.
func (t *AsyncTask) FinishedCondition() *metav1.Condition {
	return meta.FindStatusCondition(t.Status.Conditions, ConditionFinished)
}

// ReadyCondition returns the task's Ready condition, or nil while the task has none.
func (t *AsyncTask) ReadyCondition() *metav1.Condition {
	return meta.FindStatusCondition(t.Status.Conditions, ConditionReady)
}

// IsFinished reports whether the task has ended, succeeded or failed: Finished is True. A finished task
// never runs again.
func (t *AsyncTask) IsFinished() bool {
	return meta.IsStatusConditionTrue(t.Status.Conditions, ConditionFinished)
}

// Succeeded reports whether the task has ended and succeeded: Finished and Ready are True.
func (t *AsyncTask) Succeeded() bool {
	return t.IsFinished() && meta.IsStatusConditionTrue(t.Status.Conditions, ConditionReady)
}

// Failed reports whether the task has ended without succeeding: Finished is True and Ready is not. The
// Finished condition's reason says why (TaskFailed, DeadlineExceeded, TaskNotFound, ...).
func (t *AsyncTask) Failed() bool {
	return t.IsFinished() && !meta.IsStatusConditionTrue(t.Status.Conditions, ConditionReady)
}

// SubmittedCondition returns the Submitted condition of a task with spec.submit, or nil while it has none.
func (t *AsyncTask) SubmittedCondition() *metav1.Condition {
	return meta.FindStatusCondition(t.Status.Conditions, ConditionSubmitted)
}

// EffectiveTaskID is the vendor's ID of the task's job: status.taskID once the operator recorded it (the ID a
// submission got, or a person adopted), else spec.taskID. It is "" while a submitted job has no ID yet.
func (t *AsyncTask) EffectiveTaskID() string {
	if t.Status.TaskID != "" {
		return t.Status.TaskID
	}
	return t.Spec.TaskID
}

// SubmitOutcomeUnknown reports whether the task's start request may have reached the vendor, no answer says
// what it did, and repeating it is not safe: the task waits for a person to set the annotation
// tasks.asynctask.dev/resolve (adopt:<taskID>, resubmit or abandon).
func (t *AsyncTask) SubmitOutcomeUnknown() bool {
	c := t.SubmittedCondition()
	return c != nil && c.Status == metav1.ConditionUnknown && c.Reason == ReasonSubmitOutcomeUnknown
}

// Queued reports whether the task waits for a free place under its operation's maxRunning.
func (t *AsyncTask) Queued() bool {
	c := t.SubmittedCondition()
	return c != nil && c.Status == metav1.ConditionUnknown && c.Reason == ReasonQueued
}

// SubmitAccepted reports whether the task's job was started: the vendor accepted it or a person adopted it.
func (t *AsyncTask) SubmitAccepted() bool {
	return meta.IsStatusConditionTrue(t.Status.Conditions, ConditionSubmitted)
}
