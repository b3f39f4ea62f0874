package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackendKind is the kind of backend an AsyncTask refers to.
// +kubebuilder:validation:Enum=TaskBackend;ClusterTaskBackend
type BackendKind string

// The kinds of backend.
const (
	BackendKindTaskBackend        BackendKind = "TaskBackend"
	BackendKindClusterTaskBackend BackendKind = "ClusterTaskBackend"
)

// BackendReference names a TaskBackend in the task's namespace or a ClusterTaskBackend.
type BackendReference struct {
	// Kind is TaskBackend (in the task's namespace) or ClusterTaskBackend.
	// +optional
	// +kubebuilder:default=TaskBackend
	Kind BackendKind `json:"kind,omitempty"`

	// Name of the backend.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// LocalObjectReference names an object in the task's namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// AsyncTaskSpec names a backend and either the vendor's task ID of a job started elsewhere (taskID) or the job
// the operator starts itself (submit).
// +kubebuilder:validation:XValidation:rule="has(self.taskID) != has(self.submit)",message="exactly one of taskID and submit must be set"
// +kubebuilder:validation:XValidation:rule="has(self.taskID) == has(oldSelf.taskID)",message="taskID is immutable: it cannot be added or removed",fieldPath=".taskID"
// +kubebuilder:validation:XValidation:rule="has(self.submit) == has(oldSelf.submit)",message="submit is immutable: it cannot be added or removed",fieldPath=".submit"
type AsyncTaskSpec struct {
	// BackendRef says which backend tracks this task. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="backendRef is immutable"
	BackendRef BackendReference `json:"backendRef"`

	// TaskID is the vendor's task, request or job ID of a job started elsewhere; exactly one of taskID and
	// submit. Immutable. It is sent as one escaped path segment; an ID a server may read as a dot segment (.,
	// .., %2E%2E, fullwidth dots, a/../b) fails the task (reason TaskFailed) before anything is sent.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1F\x7F]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="taskID is immutable"
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="must not be . or .. (a task ID is sent as one path segment)"
	TaskID string `json:"taskID,omitempty"`

	// Submit asks the operator to start the job itself, at most once, through one of the backend's
	// spec.operations; exactly one of taskID and submit. Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="submit is immutable"
	Submit *SubmitSpec `json:"submit,omitempty"`

	// PollInterval is how often to poll while the task runs; the backend's by default.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="must be between 1s and 24h"
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// ActiveDeadlineSeconds gives up on a task still running this long after the AsyncTask was created:
	// phase Failed, reason DeadlineExceeded.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// ResultConfigMap also writes the full result to this ConfigMap (key result.json), owned by the task.
	// +optional
	ResultConfigMap *LocalObjectReference `json:"resultConfigMap,omitempty"`

	// TTLSecondsAfterFinished deletes the task this long after it finished.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// ProgressDeadlineSeconds marks a running task Stalled (reason ProgressDeadlineExceeded) while neither
	// its progress nor its vendor status changed for this long. Polling goes on; the condition clears when
	// the task moves.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// Parameters fill the {name} placeholders of an HTTP backend's requests that the backend's own
	// spec.http.parameters leave unset. A parameter the backend sets is never overridden: a task that sets one
	// fails (reason TaskFailed) and nothing is sent. Other backend types ignore them.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 63 && size(self[k]) <= 1024)",message="parameter names are at most 63 and values at most 1024 characters"
	Parameters map[string]string `json:"parameters,omitempty"`
}

// SubmitSpec is the job an AsyncTask asks the operator to start: one of its backend's operations, with the
// task's parameters and body.
// +kubebuilder:validation:XValidation:rule="!(has(self.body) && has(self.bodyFrom))",message="body and bodyFrom are mutually exclusive",fieldPath=".bodyFrom"
type SubmitSpec struct {
	// Operation is the name of one of the backend's spec.operations.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Operation string `json:"operation"`

	// Parameters fill the operation's path placeholders that the backend leaves unset. One the backend sets is
	// never overridden: the task fails and nothing is sent.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 63 && size(self[k]) <= 1024)",message="parameter names are at most 63 and values at most 1024 characters"
	Parameters map[string]string `json:"parameters,omitempty"`

	// Body is a JSON object, task.body in the operation's body expression; at most 256 KiB once encoded (a
	// larger one fails the task before anything is sent).
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:MaxProperties=1024
	Body *JSON `json:"body,omitempty"`

	// BodyFrom reads a larger body (at most 1 MiB) from a ConfigMap or Secret key in the task's namespace, once,
	// when the attempt is made: JSON becomes an object, anything else a string. Not together with body.
	// +optional
	BodyFrom *BodySource `json:"bodyFrom,omitempty"`
}

// BodySource names the ConfigMap or Secret key that holds a submission's body: exactly one of the two.
// +kubebuilder:validation:XValidation:rule="has(self.configMapKeyRef) != has(self.secretKeyRef)",message="exactly one of configMapKeyRef and secretKeyRef must be set"
type BodySource struct {
	// ConfigMapKeyRef names a key of a ConfigMap in the task's namespace.
	// +optional
	ConfigMapKeyRef *LocalKeyReference `json:"configMapKeyRef,omitempty"`

	// SecretKeyRef names a key of a Secret in the task's namespace.
	// +optional
	SecretKeyRef *LocalKeyReference `json:"secretKeyRef,omitempty"`
}

// LocalKeyReference names one key of a ConfigMap or Secret in the task's namespace.
type LocalKeyReference struct {
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// Key in the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SubmissionStatus records the start request of a task with spec.submit: which attempt was made, with which
// key, and what the vendor answered. The same attempt is also recorded in the annotation
// tasks.asynctask.dev/submit-attempt, so that either record alone stops a second send.
type SubmissionStatus struct {
	// Attempt is the number of the attempt: 1, then one more for each resubmit.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempt int32 `json:"attempt,omitempty"`

	// IdempotencyKey is the key (on ZStack the job UUID) derived from the task's UID and the attempt.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	IdempotencyKey string `json:"idempotencyKey,omitempty"`

	// SentTime is when the attempt was recorded, just before its request was sent.
	// +optional
	SentTime *metav1.Time `json:"sentTime,omitempty"`

	// AcceptedTime is when the vendor's acceptance (or a person's adoption) was recorded.
	// +optional
	AcceptedTime *metav1.Time `json:"acceptedTime,omitempty"`

	// ResponseStatus is the HTTP status of the vendor's answer to the attempt, when there was one.
	// +optional
	ResponseStatus int32 `json:"responseStatus,omitempty"`
}

// TaskPhase is where a task is in its life.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type TaskPhase string

// Task phases.
const (
	TaskPhasePending   TaskPhase = "Pending"
	TaskPhaseRunning   TaskPhase = "Running"
	TaskPhaseSucceeded TaskPhase = "Succeeded"
	TaskPhaseFailed    TaskPhase = "Failed"
)

// Finished reports whether the phase is final.
func (p TaskPhase) Finished() bool { return p == TaskPhaseSucceeded || p == TaskPhaseFailed }

// Condition types, following kstatus.
const (
	// ConditionReady is True once the task succeeded (AsyncTask) or the vendor answered (backends).
	ConditionReady = "Ready"
	// ConditionReconciling is True while the task is still being tracked.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the task failed or made no progress for progressDeadlineSeconds.
	ConditionStalled = "Stalled"
	// ConditionFinished is True once the task succeeded or failed.
	ConditionFinished = "Finished"
	// ConditionSubmitted says whether the job of a task with spec.submit was started (tasks with spec.submit
	// only).
	ConditionSubmitted = "Submitted"
)

// Annotations of the submission protocol (docs/design.md, "Starting the job").
const (
	// AnnotationSubmitAttempt records an attempt before its request is sent: JSON {"attempt", "key", "time"}.
	AnnotationSubmitAttempt = "tasks.asynctask.dev/submit-attempt"
	// AnnotationTaskID records the vendor's task ID once the vendor accepted the job (or a person adopted it).
	AnnotationTaskID = "tasks.asynctask.dev/task-id"
	// AnnotationResolve is a person's answer to SubmitOutcomeUnknown: "adopt:<taskID>", "resubmit" or
	// "abandon". The operator acts on it once and removes it.
	AnnotationResolve = "tasks.asynctask.dev/resolve"
)

// AnnotationRequestedAt asks for one poll now when set to a new value (by convention an RFC 3339 time, like
// Flux's reconcile.fluxcd.io/requestedAt). The poll honours the backend's rate limit and worker shares but not
// the task's interval or backoff; a finished task is not polled. The value handled is then in
// status.lastHandledRequestedAt.
const AnnotationRequestedAt = "tasks.asynctask.dev/requestedAt"

// Values of AnnotationResolve.
const (
	ResolveAdoptPrefix = "adopt:"
	ResolveResubmit    = "resubmit"
	ResolveAbandon     = "abandon"
)

// Condition reasons.
const (
	ReasonPending                  = "Pending"
	ReasonRunning                  = "Running"
	ReasonSucceeded                = "Succeeded"
	ReasonTaskFailed               = "TaskFailed"
	ReasonDeadlineExceeded         = "DeadlineExceeded"
	ReasonTaskNotFound             = "TaskNotFound"
	ReasonBackendUnavailable       = "BackendUnavailable"
	ReasonAuthenticationFailed     = "AuthenticationFailed"
	ReasonBackendNotFound          = "BackendNotFound"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonBackendNotAllowed: the ClusterTaskBackend's allowedNamespaces does not select the task's
	// namespace. The task is never polled; it resumes when the selector or the namespace's labels change.
	ReasonBackendNotAllowed = "BackendNotAllowed"

	// Submitted reasons (tasks with spec.submit), also the Ready reason while the task is not tracked yet.

	// ReasonQueued: the operation's maxRunning is reached; the task waits its turn in creation order.
	ReasonQueued = "Queued"
	// ReasonSubmitting: the start request is being sent (or resent with the same key).
	ReasonSubmitting = "Submitting"
	// ReasonAccepted: the vendor took the job; the task tracks it.
	ReasonAccepted = "Accepted"
	// ReasonAdopted: a person named the job (resolve annotation adopt:<taskID>); the task tracks it.
	ReasonAdopted = "Adopted"
	// ReasonSubmitRejected: the vendor refused the job with a 4xx answer. The task failed.
	ReasonSubmitRejected = "SubmitRejected"
	// ReasonSubmitOutcomeUnknown: the request may have reached the vendor and no answer says what it did, and
	// repeating it is not safe. The task waits for a person (resolve annotation).
	ReasonSubmitOutcomeUnknown = "SubmitOutcomeUnknown"
	// ReasonSubmitAbandoned: a person gave up on the job (resolve annotation abandon). The task failed.
	ReasonSubmitAbandoned = "SubmitAbandoned"
	// ReasonOperationNotFound: the backend has no operation of that name; nothing is sent, and the task
	// resumes when the backend gains it.
	ReasonOperationNotFound = "OperationNotFound"

	// Backend Ready reasons.
	ReasonReady          = "Ready"
	ReasonInvalidConfig  = "InvalidConfig"
	ReasonSecretNotFound = "SecretNotFound"
	ReasonUnreachable    = "Unreachable"
)

// AsyncTaskStatus is what the operator last saw of the task.
type AsyncTaskStatus struct {
	// Phase is Pending, Running, Succeeded or Failed.
	// +optional
	Phase TaskPhase `json:"phase,omitempty"`

	// TaskID is the vendor's task ID: spec.taskID, or the ID the submission got (or a person adopted).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	TaskID string `json:"taskID,omitempty"`

	// Submission records the start request of a task with spec.submit.
	// +optional
	Submission *SubmissionStatus `json:"submission,omitempty"`

	// VendorStatus is the vendor's own status word, verbatim, at most 256 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	VendorStatus string `json:"vendorStatus,omitempty"`

	// Progress is the percent done, when the vendor reports one; 100 once Succeeded.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Progress *int32 `json:"progress,omitempty"`

	// Message is one line for humans, at most 1,024 characters: the vendor's message, or what went wrong.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// TaskName is the vendor's task name or type, where it has one, at most 256 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	TaskName string `json:"taskName,omitempty"`

	// Result is the vendor's result as JSON; omitted when over 64 KiB.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Result *JSON `json:"result,omitempty"`

	// ResultTruncated is true when result was left out for size.
	// +optional
	ResultTruncated bool `json:"resultTruncated,omitempty"`

	// StartTime is the vendor's start time where given, else when the operator first saw the task.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is the vendor's end time where given, else when the operator saw the task finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// ConsecutiveErrors counts backend errors in a row; 0 after a successful poll.
	// +optional
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty"`

	// ConsecutiveNotFound counts polls in a row that the vendor answered "no such task"; the task fails
	// with TaskNotFound at 3.
	// +optional
	ConsecutiveNotFound int32 `json:"consecutiveNotFound,omitempty"`

	// LastProgressTime is when progress or vendorStatus last changed; progressDeadlineSeconds counts from it.
	// +optional
	LastProgressTime *metav1.Time `json:"lastProgressTime,omitempty"`

	// LastHandledRequestedAt is the value of the tasks.asynctask.dev/requestedAt annotation whose poll this
	// status holds, so that a client that asked for a poll can wait for it.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`

	// ObservedGeneration is the generation this status describes; -1 until the operator first looked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration"`

	// Conditions hold Ready, Reconciling, Stalled and Finished, following kstatus.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// AsyncTask is one task running in a vendor system, tracked until it ends.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=atask,categories=asynctask
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.spec.backendRef.name`
// +kubebuilder:printcolumn:name="Task ID",type=string,JSONPath=`.status.taskID`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Progress",type=integer,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.message`
type AsyncTask struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AsyncTaskSpec `json:"spec"`

	// +optional
	// +kubebuilder:default:={"observedGeneration":-1}
	Status AsyncTaskStatus `json:"status,omitempty"`
}

// AsyncTaskList is a list of AsyncTasks.
// +kubebuilder:object:root=true
type AsyncTaskList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AsyncTask `json:"items"`
}

func init() {
	registerTypes(&AsyncTask{}, &AsyncTaskList{})
}
