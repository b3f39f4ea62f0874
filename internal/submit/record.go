// Package submit starts a vendor's job for an AsyncTask with spec.submit, at most once per attempt, whatever
// crashes, timeouts or conflicting writes happen (../../docs/design.md, "Starting the job"). It holds the
// protocol's state machine (Decide, Classify), the statuses it writes (statusFor), the protocol itself against
// two narrow interfaces (Store: the task's records on the API server; Vendor: the backend), and the queue that
// enforces an operation's maxRunning. The controller only wires it.
package submit

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/types"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// Attempt is one recorded attempt to start the job: its number, its key (the idempotency key or, on ZStack,
// the job UUID) and when it was recorded, just before its request was sent.
type Attempt struct {
	Number int32     `json:"attempt"`
	Key    string    `json:"key"`
	Time   time.Time `json:"time"`
}

// KeyFor derives the key of an attempt from the task's UID and the attempt's number: a name-based UUID
// (version 5, RFC 9562) of "<uid>/<attempt>" written as 32 lower-case hex characters, the form ZStack takes
// for X-Job-UUID. It is the same in every process, so a resend carries the key of the first send.
func KeyFor(uid types.UID, attempt int32) string {
	key := uuid.NewSHA1(keyNamespace, []byte(string(uid)+"/"+strconv.Itoa(int(attempt))))
	return hex.EncodeToString(key[:])
}

// keyNamespace is the UUID namespace of the attempts' keys.
var keyNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://asynctask.dev/submit-attempt"))

// encodeAttempt is the value of the annotation tasks.asynctask.dev/submit-attempt.
func encodeAttempt(a Attempt) string {
	b, _ := json.Marshal(Attempt{Number: a.Number, Key: a.Key, Time: a.Time.UTC().Truncate(time.Second)}) //nolint:errchkjson // a struct of plain fields always encodes
	return string(b)
}

// decodeAttempt reads the annotation; a value that is not one (a person's edit) reads as no attempt, and the
// status record still stops a second send.
func decodeAttempt(s string) (Attempt, bool) {
	var a Attempt
	if s == "" || json.Unmarshal([]byte(s), &a) != nil || a.Number < 1 {
		return Attempt{}, false
	}
	return a, true
}

// Records is what the task's two records, metadata and status, say of its submission, taken together: either
// alone is enough to stop a second send, since status is lost by some backup/restore paths and metadata by
// kubectl replace.
type Records struct {
	// Attempt is the highest attempt either record holds; Number 0 when none was ever made.
	Attempt Attempt
	// TaskID is the job's ID once the vendor accepted it or a person adopted it, "" before.
	TaskID string
	// Adopted says a person named the job.
	Adopted bool
	// InMetadata and InStatus say which records hold Attempt and TaskID, so that a lost one is written again.
	AttemptInMetadata, AttemptInStatus bool
	TaskIDInMetadata, TaskIDInStatus   bool
	// Reason is the reason of the Submitted condition in status ("" when none).
	Reason string
	// Resolve is a person's resolution (the annotation tasks.asynctask.dev/resolve), "" when none.
	Resolve string
}

// ReadRecords reads a task's records.
func ReadRecords(task *v1alpha1.AsyncTask) Records {
	var r Records
	fromMeta, okMeta := decodeAttempt(task.Annotations[v1alpha1.AnnotationSubmitAttempt])
	var fromStatus Attempt
	if s := task.Status.Submission; s != nil && s.Attempt > 0 {
		fromStatus = Attempt{Number: s.Attempt, Key: s.IdempotencyKey}
		if s.SentTime != nil {
			fromStatus.Time = s.SentTime.Time
		}
	}
	switch {
	case okMeta && fromMeta.Number >= fromStatus.Number:
		r.Attempt = fromMeta
	default:
		r.Attempt = fromStatus
	}
	r.AttemptInMetadata = okMeta && fromMeta.Number == r.Attempt.Number
	r.AttemptInStatus = fromStatus.Number > 0 && fromStatus.Number == r.Attempt.Number
	metaID, statusID := task.Annotations[v1alpha1.AnnotationTaskID], task.Status.TaskID
	r.TaskID = statusID
	if r.TaskID == "" {
		r.TaskID = metaID
	}
	r.TaskIDInMetadata, r.TaskIDInStatus = metaID != "" && metaID == r.TaskID, statusID != ""
	if c := task.SubmittedCondition(); c != nil {
		r.Reason = c.Reason
	}
	r.Adopted = r.Reason == v1alpha1.ReasonAdopted
	r.Resolve = strings.TrimSpace(task.Annotations[v1alpha1.AnnotationResolve])
	return r
}

// Started reports whether the task holds a place under its operation's maxRunning: an attempt was recorded
// or a job adopted, and the task has not finished.
func Started(task *v1alpha1.AsyncTask) bool {
	if task.Spec.Submit == nil || task.Status.Phase.Finished() {
		return false
	}
	r := ReadRecords(task)
	return r.Attempt.Number > 0 || r.TaskID != ""
}

// resolution is a parsed resolve annotation.
type resolution struct {
	kind   string // ResolveResubmit, ResolveAbandon or ResolveAdoptPrefix
	taskID string // for adopt
}

// parseResolve reads the resolve annotation; the error says what it should be.
func parseResolve(s string) (resolution, error) {
	switch {
	case s == v1alpha1.ResolveResubmit, s == v1alpha1.ResolveAbandon:
		return resolution{kind: s}, nil
	case strings.HasPrefix(s, v1alpha1.ResolveAdoptPrefix):
		id := strings.TrimSpace(strings.TrimPrefix(s, v1alpha1.ResolveAdoptPrefix))
		if problem := taskIDProblem(id); problem != "" {
			return resolution{}, fmt.Errorf("annotation %s=%q names no usable task ID: %s", v1alpha1.AnnotationResolve, s, problem)
		}
		return resolution{kind: v1alpha1.ResolveAdoptPrefix, taskID: id}, nil
	}
	return resolution{}, fmt.Errorf("annotation %s=%q is not one of adopt:<taskID>, resubmit, abandon", v1alpha1.AnnotationResolve, s)
}

// taskIDProblem says why id cannot be a task ID ("" when it can), by the rules of spec.taskID.
func taskIDProblem(id string) string {
	switch {
	case id == "":
		return "it is empty"
	case len(id) > 256:
		return "it is longer than 256 characters"
	case id == "." || id == "..":
		return "it is a dot segment"
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return "it holds control characters"
		}
	}
	return ""
}
