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

// AsyncTaskSpec names a backend and the vendor's task ID.
type AsyncTaskSpec struct {
	// BackendRef says which backend tracks this task. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="backendRef is immutable"
	BackendRef BackendReference `json:"backendRef"`

	// TaskID is the vendor's task, request or job ID. Immutable. It is sent as one escaped path segment; an ID
	// a server may read as a dot segment (., .., %2E%2E, fullwidth dots, a/../b) fails the task (reason
	// TaskFailed) before anything is sent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1F\x7F]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="taskID is immutable"
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="must not be . or .. (a task ID is sent as one path segment)"
	TaskID string `json:"taskID"`

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
// +kubebuilder:printcolumn:name="Task ID",type=string,JSONPath=`.spec.taskID`
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
