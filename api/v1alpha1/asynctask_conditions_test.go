package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTaskConditionReaders(t *testing.T) {
	ready := func(s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: ConditionReady, Status: s, Reason: reason}
	}
	finished := func(s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: ConditionFinished, Status: s, Reason: reason}
	}
	type want struct {
		finished, succeeded, failed bool
		readyReason, finishedReason string // "" when the condition is absent
	}
	cases := map[string]struct {
		reason     string
		conditions []metav1.Condition
		want       want
	}{
		"NoStatus": {
			reason: "a task the operator has not looked at yet is neither finished nor ready",
			want:   want{},
		},
		"Running": {
			reason:     "a running task has Ready False and no Finished condition",
			conditions: []metav1.Condition{ready(metav1.ConditionFalse, ReasonRunning)},
			want:       want{readyReason: ReasonRunning},
		},
		"Succeeded": {
			reason:     "Finished and Ready True is success",
			conditions: []metav1.Condition{ready(metav1.ConditionTrue, ReasonSucceeded), finished(metav1.ConditionTrue, ReasonSucceeded)},
			want:       want{finished: true, succeeded: true, readyReason: ReasonSucceeded, finishedReason: ReasonSucceeded},
		},
		"Failed": {
			reason:     "Finished True with Ready False is failure",
			conditions: []metav1.Condition{ready(metav1.ConditionFalse, ReasonTaskFailed), finished(metav1.ConditionTrue, ReasonTaskFailed)},
			want:       want{finished: true, failed: true, readyReason: ReasonTaskFailed, finishedReason: ReasonTaskFailed},
		},
		"FailedWithoutReady": {
			reason:     "Finished True without a Ready condition is not success",
			conditions: []metav1.Condition{finished(metav1.ConditionTrue, ReasonDeadlineExceeded)},
			want:       want{finished: true, failed: true, finishedReason: ReasonDeadlineExceeded},
		},
		"ReadyButNotFinished": {
			reason:     "Ready True alone does not make a task finished",
			conditions: []metav1.Condition{ready(metav1.ConditionTrue, ReasonSucceeded)},
			want:       want{readyReason: ReasonSucceeded},
		},
		"FinishedFalse": {
			reason:     "Finished False is not finished",
			conditions: []metav1.Condition{ready(metav1.ConditionFalse, ReasonRunning), finished(metav1.ConditionFalse, ReasonRunning)},
			want:       want{readyReason: ReasonRunning, finishedReason: ReasonRunning},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			task := &AsyncTask{Status: AsyncTaskStatus{Conditions: tc.conditions}}
			got := want{finished: task.IsFinished(), succeeded: task.Succeeded(), failed: task.Failed()}
			if c := task.ReadyCondition(); c != nil {
				got.readyReason = c.Reason
			}
			if c := task.FinishedCondition(); c != nil {
				got.finishedReason = c.Reason
			}
			if got != tc.want {
				t.Errorf("%s:\ngot  %+v\nwant %+v", tc.reason, got, tc.want)
			}
		})
	}
}

func TestSubmissionReaders(t *testing.T) {
	submitted := func(s metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: ConditionSubmitted, Status: s, Reason: reason}}
	}
	cases := map[string]struct {
		task                             AsyncTask
		effectiveTaskID                  string
		outcomeUnknown, queued, accepted bool
	}{
		"a job started elsewhere": {task: AsyncTask{Spec: AsyncTaskSpec{TaskID: "t1"}}, effectiveTaskID: "t1"},
		"submitted, not sent yet": {task: AsyncTask{Spec: AsyncTaskSpec{Submit: &SubmitSpec{Operation: "o"}},
			Status: AsyncTaskStatus{Conditions: submitted(metav1.ConditionUnknown, ReasonSubmitting)}}},
		"queued": {task: AsyncTask{Spec: AsyncTaskSpec{Submit: &SubmitSpec{Operation: "o"}},
			Status: AsyncTaskStatus{Conditions: submitted(metav1.ConditionUnknown, ReasonQueued)}}, queued: true},
		"outcome unknown": {task: AsyncTask{Spec: AsyncTaskSpec{Submit: &SubmitSpec{Operation: "o"}},
			Status: AsyncTaskStatus{Conditions: submitted(metav1.ConditionUnknown, ReasonSubmitOutcomeUnknown)}}, outcomeUnknown: true},
		"accepted": {task: AsyncTask{Spec: AsyncTaskSpec{Submit: &SubmitSpec{Operation: "o"}},
			Status: AsyncTaskStatus{TaskID: "job-1", Conditions: submitted(metav1.ConditionTrue, ReasonAccepted)}}, effectiveTaskID: "job-1", accepted: true},
		"adopted": {task: AsyncTask{Spec: AsyncTaskSpec{Submit: &SubmitSpec{Operation: "o"}},
			Status: AsyncTaskStatus{TaskID: "job-2", Conditions: submitted(metav1.ConditionTrue, ReasonAdopted)}}, effectiveTaskID: "job-2", accepted: true},
		"rejected": {task: AsyncTask{Spec: AsyncTaskSpec{Submit: &SubmitSpec{Operation: "o"}},
			Status: AsyncTaskStatus{Conditions: submitted(metav1.ConditionFalse, ReasonSubmitRejected)}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			task := tc.task
			if got := task.EffectiveTaskID(); got != tc.effectiveTaskID {
				t.Errorf("EffectiveTaskID() = %q, want %q", got, tc.effectiveTaskID)
			}
			if got := task.SubmitOutcomeUnknown(); got != tc.outcomeUnknown {
				t.Errorf("SubmitOutcomeUnknown() = %v", got)
			}
			if got := task.Queued(); got != tc.queued {
				t.Errorf("Queued() = %v", got)
			}
			if got := task.SubmitAccepted(); got != tc.accepted {
				t.Errorf("SubmitAccepted() = %v", got)
			}
		})
	}
}
