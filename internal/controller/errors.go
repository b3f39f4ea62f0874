package controller

import (
	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"strings"
)

// retryClass says what an error does to the task that met it (source-controller's Stalling, Waiting and
// Generic errors; "waiting", a poll deferred by a rate limit or a worker share, is a poll result, not an error).
type retryClass int

const (
	// retryBackoff is a transient failure: the task keeps its last observation and polls again with backoff.
	retryBackoff retryClass = iota
	// retryFailAfterRepeats backs off like retryBackoff until notFoundPollsBeforeFailure answers in a row fail
	// the task.
	retryFailAfterRepeats
	// retryFail is terminal: the task fails and is never polled again.
	retryFail
	// retryStall means the vendor was not asked and will not be until the backend's spec.allowedNamespaces or
	// the namespace's labels change: Stalled, and not counted as an error.
	retryStall
)

// errorClass is what one kind of error means to each place that reports it.
type errorClass struct {
	// taskReason is the task's Ready reason while it waits on the error.
	taskReason string
	// failureReason is the task's reason when the error fails it (retryFail, retryFailAfterRepeats).
	failureReason string
	// backendReason is the backend's Ready reason when its check ends with the error.
	backendReason string
	// outcome is the outcome label of asynctask_polls_total.
	outcome string
	retry   retryClass
	// backendFailing marks the errors that count against the backend's health: while they last, its tasks back
	// off and one task per interval probes it.
	backendFailing bool
}

// errorClasses is the one classification of errors: by the task status, the backend's Ready condition, the
// metrics and the scheduler. The outcome labels are the ones docs/design.md lists.
var errorClasses = map[backend.ErrorKind]errorClass{
	backend.KindTransient: {taskReason: v1alpha1.ReasonBackendUnavailable, backendReason: v1alpha1.ReasonUnreachable,
		outcome: "Transient", retry: retryBackoff, backendFailing: true},
	backend.KindAuthentication: {taskReason: v1alpha1.ReasonAuthenticationFailed, backendReason: v1alpha1.ReasonAuthenticationFailed,
		outcome: "Authentication", retry: retryBackoff},
	backend.KindNotFound: {taskReason: v1alpha1.ReasonBackendUnavailable, failureReason: v1alpha1.ReasonTaskNotFound,
		backendReason: v1alpha1.ReasonUnreachable, outcome: "NotFound", retry: retryFailAfterRepeats},
	backend.KindTerminal: {failureReason: v1alpha1.ReasonTaskFailed, backendReason: v1alpha1.ReasonUnreachable,
		outcome: "Terminal", retry: retryFail},
	backend.KindInvalidConfig: {taskReason: v1alpha1.ReasonBackendUnavailable, backendReason: v1alpha1.ReasonInvalidConfig,
		outcome: "InvalidConfig", retry: retryBackoff},
	backend.KindBackendNotFound: {taskReason: v1alpha1.ReasonBackendNotFound, backendReason: v1alpha1.ReasonBackendNotFound,
		outcome: "BackendNotFound", retry: retryBackoff},
	backend.KindSecretNotFound: {taskReason: v1alpha1.ReasonBackendUnavailable, backendReason: v1alpha1.ReasonSecretNotFound,
		outcome: "SecretNotFound", retry: retryBackoff},
	backend.KindUnreachable: {taskReason: v1alpha1.ReasonBackendUnavailable, backendReason: v1alpha1.ReasonUnreachable,
		outcome: "Unreachable", retry: retryBackoff},
	backend.KindNotAllowed: {taskReason: v1alpha1.ReasonBackendNotAllowed, backendReason: v1alpha1.ReasonBackendNotAllowed,
		outcome: "BackendNotAllowed", retry: retryStall},
}

// classify returns the class of err; an unclassified error is transient.
func classify(err error) errorClass {
	if c, ok := errorClasses[backend.KindOf(err)]; ok {
		return c
	}
	return errorClasses[backend.KindTransient]
}

// errorMessage is the one-line message an error shows in a status.
func errorMessage(err error) string {
	if err == nil {
		return "Unknown error"
	}
	msg := backend.OneLine(err.Error(), backend.MaxMessageLength)
	if msg == "" {
		return "Unknown error"
	}
	return upperFirst(msg)
}

// upperFirst starts a message with a capital, unless it starts with a field path (spec.parameters.x), whose
// case is part of its name.
func upperFirst(s string) string {
	first, _, _ := strings.Cut(s, " ")
	if strings.Contains(first, ".") {
		return s
	}
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
