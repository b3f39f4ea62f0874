package submit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Store reads a task from the API server (never from a cache) and writes its records. Every write is refused
// with a conflict when the object changed since the task passed in was read: that precondition is what makes
// a record written before a send safe against a second writer or a stale read.
type Store interface {
	Get(ctx context.Context, key types.NamespacedName) (*v1alpha1.AsyncTask, error)
	// SetAnnotations sets and removes annotations, and returns the object written.
	SetAnnotations(ctx context.Context, task *v1alpha1.AsyncTask, set map[string]string, remove []string) (*v1alpha1.AsyncTask, error)
	// SetStatus writes the status, and returns the object written.
	SetStatus(ctx context.Context, task *v1alpha1.AsyncTask, status v1alpha1.AsyncTaskStatus) (*v1alpha1.AsyncTask, error)
}

// Vendor is the task's backend and operation.
type Vendor interface {
	// Request builds the start request of the task with key. A *backend.Error of KindTerminal means it can
	// never be built as the task is written (the task fails); any other error is retried.
	Request(ctx context.Context, task *v1alpha1.AsyncTask, key string) (backend.StartRequest, error)
	// Send sends it; ctx carries the backend.WriteTrace of the request.
	Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error)
	// Answer reads the vendor's answer: whether it took the job, and its ID ("" when not readable).
	Answer(ctx context.Context, resp *backend.Response, key string) (accepted bool, taskID string, err error)
	// JobExists asks the vendor whether a job with this ID exists (RecoverByProbe). It errs when the answer
	// says neither.
	JobExists(ctx context.Context, id string) (bool, error)
}

// Pass is one run of the protocol for one task.
type Pass struct {
	// Task is the task as just read from the API server.
	Task   *v1alpha1.AsyncTask
	Vendor Vendor
	// Recovery is how the operation settles an unknown outcome; Keyed says its requests carry a key.
	Recovery Recovery
	Keyed    bool
	// Admit runs record, the write of a first attempt, under the lock of the operation's queue when the task
	// may start now, and reports whether it did. Nil admits every task.
	Admit func(record func() error) (bool, error)
	// QueuedMessage is the message of a task the queue holds back.
	QueuedMessage string
	// Interval is the first wait before a send that failed is tried again; it doubles up to maxRetryWait.
	Interval time.Duration
	// SendTimeout bounds one send, a login included; the Submitter's when 0.
	SendTimeout time.Duration
}

// Result is what a pass did.
type Result struct {
	// Task is the task as last written (or read).
	Task *v1alpha1.AsyncTask
	// TaskID is set once the job's ID is recorded: the task is then tracked like one with spec.taskID.
	TaskID string
	// RetryAfter is when to run the protocol again; 0 means only when the task changes (a person's annotation).
	RetryAfter time.Duration
	// Submissions are the sends' outcomes, for metrics: "accepted", "rejected", "unknown", "resent".
	Submissions []string
	// Events are for the task's event stream.
	Events []Event
	// Started says an attempt was recorded by this pass (the queue counts the task from now on).
	Started bool
}

// Event is an event to record on the task.
type Event struct {
	Warning         bool
	Reason, Message string
}

// Submitter runs the protocol.
type Submitter struct {
	Store Store
	Clock clock.PassiveClock
	// SendTimeout bounds one send, a login included; recording its answer is bounded by recordTimeout.
	SendTimeout time.Duration
}

const (
	// recordTimeout bounds the retries that record a send's answer. They run detached from the reconcile's
	// cancellation: an operator shutting down still records what the vendor said.
	recordTimeout = time.Minute
	// maxRetryWait caps the wait before a send is tried again.
	maxRetryWait = 5 * time.Minute
)

// errStale is a write refused because the task changed: nothing was sent; the next pass reads it again.
var errStale = errors.New("the task changed while its submission was recorded; nothing was sent")

// Run runs one pass: it decides from the task's records and carries the decision out. An error means an
// API-server write failed before anything was sent; the pass is run again with backoff.
func (s *Submitter) Run(ctx context.Context, p Pass) (Result, error) {
	task := p.Task
	now := s.Clock.Now()
	r := ReadRecords(task)
	res := Result{Task: task}
	switch act := Decide(r, p.Recovery, now); act {
	case ActTrack:
		return s.repair(ctx, task, r)
	case ActDropResolve:
		_, err := parseResolve(r.Resolve)
		msg := "nothing was sent yet, so there is nothing to resubmit"
		if err != nil {
			msg = err.Error()
		}
		t, werr := s.Store.SetAnnotations(ctx, task, nil, []string{v1alpha1.AnnotationResolve})
		if werr != nil {
			return res, werr
		}
		res.Task = t
		res.Events = append(res.Events, Event{Warning: true, Reason: "ResolveIgnored", Message: "Removed the resolve annotation: " + msg})
		res.RetryAfter = time.Millisecond // decide again on the task as it is now
		return res, nil
	case ActAdopt:
		return s.adopt(ctx, task, r)
	case ActAbandon:
		return s.abandon(ctx, task)
	case ActWait:
		return s.waitForPerson(ctx, task, r)
	case ActProbe:
		return s.probe(ctx, p, r)
	case ActResend:
		return s.send(ctx, p, r.Attempt, true)
	case ActResubmit:
		return s.start(ctx, p, r.Attempt.Number+1, true)
	default:
		return s.start(ctx, p, 1, false)
	}
}

// start makes a new attempt: it builds the request, waits for a place in the queue (only a first attempt:
// a resubmitted task keeps its place), records the attempt and sends it.
func (s *Submitter) start(ctx context.Context, p Pass, number int32, resubmit bool) (Result, error) {
	task := p.Task
	attempt := Attempt{Number: number, Key: KeyFor(task.UID, number), Time: s.Clock.Now()}
	if _, err := p.Vendor.Request(ctx, task, attempt.Key); err != nil {
		return s.notBuilt(ctx, p, err)
	}
	res := Result{Task: task}
	record := func() error {
		t, err := s.recordAttempt(ctx, task, attempt, resubmit)
		if err != nil {
			return err
		}
		res.Task, res.Started = t, true
		return nil
	}
	if p.Admit != nil && !resubmit {
		admitted, err := p.Admit(record)
		if err != nil {
			return res, err
		}
		if !admitted {
			return s.setStatus(ctx, task, v1alpha1.ReasonQueued, p.QueuedMessage, nil, p.Interval)
		}
	} else if err := record(); err != nil {
		return res, err
	}
	p.Task = res.Task
	sent, err := s.send(ctx, p, attempt, false)
	sent.Started = res.Started
	return sent, err
}

// recordAttempt writes the attempt to both records before anything is sent: metadata, then status, each
// under the precondition that the object is the one just written. If either write fails, nothing is sent: a
// status write refused after the metadata write is undone in metadata (left, it would read as an attempt whose
// outcome is unknown, which is safe but needs a person).
func (s *Submitter) recordAttempt(ctx context.Context, task *v1alpha1.AsyncTask, a Attempt, resubmit bool) (*v1alpha1.AsyncTask, error) {
	previous, hadPrevious := task.Annotations[v1alpha1.AnnotationSubmitAttempt]
	var remove []string
	if resubmit {
		remove = []string{v1alpha1.AnnotationResolve}
	}
	written, err := s.Store.SetAnnotations(ctx, task, map[string]string{v1alpha1.AnnotationSubmitAttempt: encodeAttempt(a)}, remove)
	if err != nil {
		return nil, staleOr(err)
	}
	st := written.Status.DeepCopy()
	st.Submission = &v1alpha1.SubmissionStatus{Attempt: a.Number, IdempotencyKey: a.Key, SentTime: &metav1.Time{Time: a.Time.Truncate(time.Second)}}
	status := statusFor(written, *st, v1alpha1.ReasonSubmitting, fmt.Sprintf("Sending attempt %d to start the job", a.Number), s.Clock.Now())
	recorded, err := s.Store.SetStatus(ctx, written, status)
	if err != nil {
		s.undoAttempt(ctx, written, a, previous, hadPrevious)
		return nil, staleOr(err)
	}
	return recorded, nil
}

// undoAttempt takes back the metadata record of attempt a, whose status write failed, so that an attempt that
// was never sent does not read as one whose outcome is unknown. It reads the task again after a conflict (a
// writer that changed the task meanwhile), and leaves the record when the status shows the attempt after all
// (a write that timed out but went through) or the annotation changed. Left, the record is safe: it reads as
// an unknown outcome.
func (s *Submitter) undoAttempt(ctx context.Context, task *v1alpha1.AsyncTask, a Attempt, previous string, hadPrevious bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mine := encodeAttempt(a)
	_ = s.retrying(ctx, task, func(fresh *v1alpha1.AsyncTask) error {
		if fresh.Annotations[v1alpha1.AnnotationSubmitAttempt] != mine ||
			fresh.Status.Submission != nil && fresh.Status.Submission.Attempt >= a.Number {
			return nil
		}
		set, remove := map[string]string{v1alpha1.AnnotationSubmitAttempt: previous}, []string(nil)
		if !hadPrevious {
			set, remove = nil, []string{v1alpha1.AnnotationSubmitAttempt}
		}
		_, err := s.Store.SetAnnotations(ctx, fresh, set, remove)
		return err
	})
}

// send sends the recorded attempt a and records what the vendor answered. resend says it was sent before.
func (s *Submitter) send(ctx context.Context, p Pass, a Attempt, resend bool) (Result, error) {
	task := p.Task
	res := Result{Task: task}
	req, err := p.Vendor.Request(ctx, task, a.Key)
	if err != nil {
		return s.notBuilt(ctx, p, err)
	}
	// Detached from the reconcile's cancellation: a shutdown must not turn a send into an unknown outcome,
	// and the answer must be recorded. Bounded by its own timeouts.
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(p.SendTimeout, s.SendTimeout))
	traceCtx, trace := backend.WithWriteTrace(sendCtx, req.Path)
	resp, sendErr := p.Vendor.Send(traceCtx, req)
	sent := Sent{Response: resp, Err: sendErr, Written: trace.Written(), Keyed: p.Keyed, Key: a.Key, Recovery: p.Recovery}
	if sendErr == nil {
		sent.Accepted, sent.TaskID, sent.AnswerErr = p.Vendor.Answer(sendCtx, resp, a.Key)
	}
	cancel()
	outcome, taskID := Classify(sent)
	if resend && outcome != NotSent {
		res.Submissions = append(res.Submissions, "resent")
	}
	recordCtx, cancelRecord := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancelRecord()
	res, err = s.recordOutcome(recordCtx, p, a, resend, sent, outcome, taskID, res)
	if apierrors.IsNotFound(err) {
		err = fmt.Errorf("the task was deleted while its start request was in flight (outcome %s, job ID %q): %w", outcome, taskID, err)
	}
	return res, err
}

// recordOutcome records what a send's outcome says on the task.
func (s *Submitter) recordOutcome(ctx context.Context, p Pass, a Attempt, resend bool, sent Sent, outcome Outcome, taskID string, res Result) (Result, error) {
	task, resp, sendErr := p.Task, sent.Response, sent.Err
	switch outcome {
	case Accepted:
		res.Submissions = append(res.Submissions, "accepted")
		return s.accepted(ctx, task, taskID, responseStatus(resp), v1alpha1.ReasonAccepted, res)
	case Rejected:
		res.Submissions = append(res.Submissions, "rejected")
		msg := fmt.Sprintf("The vendor refused the job: HTTP %d", resp.StatusCode)
		if text := backend.OneLine(string(resp.Body), backend.MaxMessageLength); text != "" {
			msg += ": " + text // cut with the message to its 1,024 characters
		}
		res.Events = append(res.Events, Event{Warning: true, Reason: v1alpha1.ReasonSubmitRejected, Message: msg})
		return s.answered(ctx, task, v1alpha1.ReasonSubmitRejected, msg, responseStatus(resp), 0, res)
	case InProgress:
		return s.answered(ctx, task, v1alpha1.ReasonSubmitting,
			fmt.Sprintf("The vendor is still working on attempt %d (HTTP 409 to its idempotency key); asking again later with the same key", a.Number),
			responseStatus(resp), s.retryWait(task, p.Interval), res)
	case NotSent:
		return s.notSent(ctx, p, a, resend, sendErr, resp, res)
	}
	res.Submissions = append(res.Submissions, "unknown")
	why := unknownWhy(sent)
	if p.Recovery == RecoverByPerson {
		return s.unknown(ctx, task, a, why, responseStatus(resp), res)
	}
	how := "resending it with the same idempotency key later"
	if p.Recovery == RecoverByProbe {
		how = "asking the vendor for the job UUID " + a.Key + " later"
	}
	return s.answered(ctx, task, v1alpha1.ReasonSubmitting,
		fmt.Sprintf("The outcome of attempt %d is unknown (%s); %s", a.Number, why, how), responseStatus(resp), s.retryWait(task, p.Interval), res)
}

// unknownWhy says in a few words why a send's outcome is unknown.
func unknownWhy(s Sent) string {
	switch {
	case s.Err != nil:
		return backend.OneLine(s.Err.Error(), 256)
	case s.AnswerErr != nil:
		return "the answer could not be read: " + backend.OneLine(s.AnswerErr.Error(), 256)
	case s.Accepted:
		return fmt.Sprintf("the vendor accepted it with HTTP %d, but its answer holds no readable job ID", s.Response.StatusCode)
	}
	return fmt.Sprintf("the vendor answered HTTP %d", s.Response.StatusCode)
}

func responseStatus(resp *backend.Response) int32 {
	if resp == nil {
		return 0
	}
	return int32(resp.StatusCode) //nolint:gosec // G115: an HTTP status code
}

// notSent handles a send that never reached the vendor, or that the vendor did not act on. An attempt that
// has no key to repeat it under is taken back in both records, so that the next try is no repeat; a keyed
// one stays and is sent again with its key.
func (s *Submitter) notSent(ctx context.Context, p Pass, a Attempt, resend bool, sendErr error, resp *backend.Response, res Result) (Result, error) {
	msg := fmt.Sprintf("Attempt %d was not sent", a.Number)
	switch {
	case sendErr != nil:
		msg += ": " + backend.OneLine(sendErr.Error(), 512)
	case resp != nil:
		msg += fmt.Sprintf(": the vendor refused the credentials (HTTP %d)", resp.StatusCode)
	}
	task := p.Task
	wait := s.retryWait(task, p.Interval)
	if backend.KindOf(sendErr) == backend.KindDeferred {
		if d, ok := backend.DeferredFor(sendErr); ok {
			wait = d
		}
	}
	if p.Recovery != RecoverByPerson || resend {
		return s.answered(ctx, task, v1alpha1.ReasonSubmitting, msg+"; trying again later", 0, wait, res)
	}
	t, err := s.takeBack(ctx, task, a)
	if err != nil {
		// Left recorded, the attempt reads as unknown next time: safe, and a person can say resubmit.
		return res, err
	}
	res.Task = t
	return s.setStatus(ctx, t, v1alpha1.ReasonSubmitting, msg+"; trying again later", t.Status.Submission, wait)
}

// takeBack removes attempt a from both records: status first, then metadata, so that a crash between them
// leaves the metadata record, which reads as an unknown outcome (safe).
func (s *Submitter) takeBack(ctx context.Context, task *v1alpha1.AsyncTask, a Attempt) (*v1alpha1.AsyncTask, error) {
	var t *v1alpha1.AsyncTask
	err := s.retrying(ctx, task, func(fresh *v1alpha1.AsyncTask) error {
		st := fresh.Status.DeepCopy()
		if st.Submission != nil && st.Submission.Attempt == a.Number {
			st.Submission = nil
			if a.Number > 1 { // the earlier attempt stays on record: its outcome was settled by a person
				st.Submission = &v1alpha1.SubmissionStatus{Attempt: a.Number - 1, IdempotencyKey: KeyFor(fresh.UID, a.Number-1)}
			}
		}
		written, err := s.Store.SetStatus(ctx, fresh, *st)
		if err != nil {
			return err
		}
		set, remove := map[string]string(nil), []string{v1alpha1.AnnotationSubmitAttempt}
		if a.Number > 1 {
			set, remove = map[string]string{v1alpha1.AnnotationSubmitAttempt: encodeAttempt(Attempt{Number: a.Number - 1, Key: KeyFor(fresh.UID, a.Number-1)})}, nil
		}
		t, err = s.Store.SetAnnotations(ctx, written, set, remove)
		return err
	})
	return t, err
}

// notBuilt handles a start request that could not be built: a terminal problem fails the task (nothing was
// ever sent for it), any other is retried.
func (s *Submitter) notBuilt(ctx context.Context, p Pass, err error) (Result, error) {
	msg := "Cannot build the start request: " + backend.OneLine(err.Error(), 768)
	if backend.KindOf(err) == backend.KindTerminal {
		r, werr := s.setStatus(ctx, p.Task, v1alpha1.ReasonTaskFailed, msg, p.Task.Status.Submission, 0)
		r.Events = append(r.Events, Event{Warning: true, Reason: v1alpha1.ReasonTaskFailed, Message: msg})
		return r, werr
	}
	return s.setStatus(ctx, p.Task, v1alpha1.ReasonSubmitting, msg, p.Task.Status.Submission, s.retryWait(p.Task, p.Interval))
}

// accepted records the job's ID: in metadata, then in status (with the reason Accepted or Adopted), each
// retried on conflict.
func (s *Submitter) accepted(ctx context.Context, task *v1alpha1.AsyncTask, taskID string, code int32, reason string, res Result) (Result, error) {
	var written *v1alpha1.AsyncTask
	err := s.retrying(ctx, task, func(fresh *v1alpha1.AsyncTask) error {
		t := fresh
		if fresh.Annotations[v1alpha1.AnnotationTaskID] != taskID || fresh.Annotations[v1alpha1.AnnotationResolve] != "" {
			var err error
			if t, err = s.Store.SetAnnotations(ctx, fresh, map[string]string{v1alpha1.AnnotationTaskID: taskID}, []string{v1alpha1.AnnotationResolve}); err != nil {
				return err
			}
		}
		st := t.Status.DeepCopy()
		st.TaskID = taskID
		st.ConsecutiveErrors = 0 // the sends' errors; polls count their own
		sub := submissionOf(st)
		sub.AcceptedTime = &metav1.Time{Time: s.Clock.Now().Truncate(time.Second)}
		if code != 0 {
			sub.ResponseStatus = code
		}
		msg := "The vendor accepted the job " + taskID
		if reason == v1alpha1.ReasonAdopted {
			msg = "Adopted the job " + taskID + " by the resolve annotation"
		}
		status := statusFor(t, *st, reason, msg, s.Clock.Now())
		status.Submission = sub
		var err error
		written, err = s.Store.SetStatus(ctx, t, status)
		return err
	})
	if err != nil {
		return res, err
	}
	res.Task, res.TaskID = written, taskID
	res.Events = append(res.Events, Event{Reason: reason, Message: written.Status.Message})
	return res, nil
}

// submissionOf returns a copy of the status's submission record, a new one when there is none.
func submissionOf(st *v1alpha1.AsyncTaskStatus) *v1alpha1.SubmissionStatus {
	if st.Submission == nil {
		return &v1alpha1.SubmissionStatus{}
	}
	return st.Submission.DeepCopy()
}

// answered records an answer that leaves the job without ID, retried on conflict.
func (s *Submitter) answered(ctx context.Context, task *v1alpha1.AsyncTask, reason, msg string, code int32, wait time.Duration, res Result) (Result, error) {
	var written *v1alpha1.AsyncTask
	err := s.retrying(ctx, task, func(fresh *v1alpha1.AsyncTask) error {
		st := fresh.Status.DeepCopy()
		sub := submissionOf(st)
		if code != 0 {
			sub.ResponseStatus = code
		}
		if reason != v1alpha1.ReasonSubmitRejected && reason != v1alpha1.ReasonSubmitOutcomeUnknown {
			st.ConsecutiveErrors++
		}
		status := statusFor(fresh, *st, reason, msg, s.Clock.Now())
		if sub.Attempt > 0 || code != 0 {
			status.Submission = sub
		}
		var err error
		written, err = s.Store.SetStatus(ctx, fresh, status)
		return err
	})
	if err != nil {
		return res, err
	}
	res.Task, res.RetryAfter = written, wait
	return res, nil
}

// unknown records an outcome that only a person can settle.
func (s *Submitter) unknown(ctx context.Context, task *v1alpha1.AsyncTask, a Attempt, why string, code int32, res Result) (Result, error) {
	msg := unknownMessage(a, why)
	res.Events = append(res.Events, Event{Warning: true, Reason: v1alpha1.ReasonSubmitOutcomeUnknown, Message: msg})
	return s.answered(ctx, task, v1alpha1.ReasonSubmitOutcomeUnknown, msg, code, 0, res)
}

func unknownMessage(a Attempt, why string) string {
	return fmt.Sprintf("The outcome of attempt %d, sent at %s, is unknown (%s) and repeating it is not safe: look in the vendor system "+
		"for a job started then, and set the annotation %s to adopt:<taskID>, resubmit or abandon",
		a.Number, a.Time.UTC().Format(time.RFC3339), why, v1alpha1.AnnotationResolve)
}

// waitForPerson shows an attempt found without answer (a crash, or an unknown outcome already recorded) as
// waiting for a person; an unchanged status is not written again.
func (s *Submitter) waitForPerson(ctx context.Context, task *v1alpha1.AsyncTask, r Records) (Result, error) {
	res := Result{Task: task}
	if r.Reason == v1alpha1.ReasonSubmitOutcomeUnknown && r.AttemptInStatus && r.AttemptInMetadata {
		return res, nil
	}
	why := "no answer was recorded for it: the operator stopped while it was being sent"
	if r.AttemptInStatus && task.Status.Submission.ResponseStatus != 0 {
		why = fmt.Sprintf("the vendor answered HTTP %d", task.Status.Submission.ResponseStatus)
	}
	if r.Reason == v1alpha1.ReasonSubmitOutcomeUnknown {
		why = "recorded earlier"
	}
	repaired, err := s.restoreAttempt(ctx, task, r)
	if err != nil {
		return res, err
	}
	return s.unknown(ctx, repaired, r.Attempt, why, 0, res)
}

// restoreAttempt writes a lost attempt record again from the other one.
func (s *Submitter) restoreAttempt(ctx context.Context, task *v1alpha1.AsyncTask, r Records) (*v1alpha1.AsyncTask, error) {
	t := task
	if !r.AttemptInMetadata {
		var err error
		if t, err = s.Store.SetAnnotations(ctx, t, map[string]string{v1alpha1.AnnotationSubmitAttempt: encodeAttempt(r.Attempt)}, nil); err != nil {
			return nil, staleOr(err)
		}
	}
	if !r.AttemptInStatus {
		st := t.Status.DeepCopy()
		st.Submission = &v1alpha1.SubmissionStatus{Attempt: r.Attempt.Number, IdempotencyKey: r.Attempt.Key, SentTime: &metav1.Time{Time: r.Attempt.Time}}
		var err error
		if t, err = s.Store.SetStatus(ctx, t, *st); err != nil {
			return nil, staleOr(err)
		}
	}
	return t, nil
}

// probe asks ZStack whether the job with the attempt's UUID exists: it does (in whatever state) → the task
// tracks it; the vendor says there is no such job → the same request, same UUID, is sent again.
func (s *Submitter) probe(ctx context.Context, p Pass, r Records) (Result, error) {
	task, err := s.restoreAttempt(ctx, p.Task, r)
	if err != nil {
		return Result{Task: p.Task}, err
	}
	p.Task = task
	exists, err := p.Vendor.JobExists(ctx, r.Attempt.Key)
	res := Result{Task: task}
	if err != nil {
		return s.answered(ctx, task, v1alpha1.ReasonSubmitting, fmt.Sprintf("The outcome of attempt %d is unknown; cannot ask the vendor for the job UUID %s yet: %s",
			r.Attempt.Number, r.Attempt.Key, backend.OneLine(err.Error(), 512)), 0, s.retryWait(task, p.Interval), res)
	}
	if exists {
		res.Submissions = append(res.Submissions, "accepted")
		return s.accepted(ctx, task, r.Attempt.Key, 0, v1alpha1.ReasonAccepted, res)
	}
	return s.send(ctx, p, r.Attempt, true)
}

// adopt records the job a person named.
func (s *Submitter) adopt(ctx context.Context, task *v1alpha1.AsyncTask, r Records) (Result, error) {
	res, _ := parseResolve(r.Resolve)
	return s.accepted(ctx, task, res.taskID, 0, v1alpha1.ReasonAdopted, Result{Task: task})
}

// abandon fails the task by a person's word: status first, then the annotation is removed, so that a crash
// between the two leaves a finished task, never a second action.
func (s *Submitter) abandon(ctx context.Context, task *v1alpha1.AsyncTask) (Result, error) {
	msg := "A person abandoned the job by the resolve annotation"
	res, err := s.setStatus(ctx, task, v1alpha1.ReasonSubmitAbandoned, msg, task.Status.Submission, 0)
	if err != nil {
		return res, err
	}
	res.Events = append(res.Events, Event{Warning: true, Reason: v1alpha1.ReasonSubmitAbandoned, Message: msg})
	if t, err := s.Store.SetAnnotations(ctx, res.Task, nil, []string{v1alpha1.AnnotationResolve}); err == nil {
		res.Task = t
	}
	return res, nil
}

// repair writes a lost record of the job's ID again (status after a restore, metadata after kubectl replace)
// and removes a resolve annotation that came too late.
func (s *Submitter) repair(ctx context.Context, task *v1alpha1.AsyncTask, r Records) (Result, error) {
	res := Result{Task: task, TaskID: r.TaskID}
	t := task
	if !r.TaskIDInMetadata || r.Resolve != "" {
		var err error
		if t, err = s.Store.SetAnnotations(ctx, t, map[string]string{v1alpha1.AnnotationTaskID: r.TaskID}, []string{v1alpha1.AnnotationResolve}); err != nil {
			return res, staleOr(err)
		}
	}
	if !r.TaskIDInStatus {
		st := t.Status.DeepCopy()
		st.TaskID = r.TaskID
		sub := submissionOf(st)
		if sub.Attempt == 0 && r.Attempt.Number > 0 {
			sub.Attempt, sub.IdempotencyKey, sub.SentTime = r.Attempt.Number, r.Attempt.Key, &metav1.Time{Time: r.Attempt.Time}
		}
		reason := v1alpha1.ReasonAccepted
		if r.Reason == v1alpha1.ReasonAdopted {
			reason = v1alpha1.ReasonAdopted
		}
		status := statusFor(t, *st, reason, "The job "+r.TaskID+" was started earlier (recorded in the annotation "+v1alpha1.AnnotationTaskID+")", s.Clock.Now())
		status.Submission = sub
		var err error
		if t, err = s.Store.SetStatus(ctx, t, status); err != nil {
			return res, staleOr(err)
		}
	}
	res.Task = t
	return res, nil
}

// setStatus writes the status of a Submitted reason once, under the precondition.
func (s *Submitter) setStatus(ctx context.Context, task *v1alpha1.AsyncTask, reason, msg string, sub *v1alpha1.SubmissionStatus, wait time.Duration) (Result, error) {
	res := Result{Task: task, RetryAfter: wait}
	status := statusFor(task, *task.Status.DeepCopy(), reason, msg, s.Clock.Now())
	status.Submission = sub.DeepCopy()
	if equalStatus(task.Status, status) {
		return res, nil
	}
	t, err := s.Store.SetStatus(ctx, task, status)
	if err != nil {
		return res, staleOr(err)
	}
	res.Task = t
	return res, nil
}

// equalStatus compares what a pass changes: phase, message, submission and the conditions' status, reason
// and message (not their times).
func equalStatus(a, b v1alpha1.AsyncTaskStatus) bool {
	if a.Phase != b.Phase || a.Message != b.Message || a.TaskID != b.TaskID || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	if (a.Submission == nil) != (b.Submission == nil) || a.Submission != nil && (a.Submission.Attempt != b.Submission.Attempt ||
		a.Submission.ResponseStatus != b.Submission.ResponseStatus || a.Submission.IdempotencyKey != b.Submission.IdempotencyKey) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message || x.ObservedGeneration != y.ObservedGeneration {
			return false
		}
	}
	return true
}

// retrying runs write on the task, and on a conflict reads it again from the API server and runs write on
// that, until it succeeds or ctx ends: for the records of an answer, which must not be lost.
func (s *Submitter) retrying(ctx context.Context, task *v1alpha1.AsyncTask, write func(fresh *v1alpha1.AsyncTask) error) error {
	fresh := task
	wait := 50 * time.Millisecond
	for {
		err := write(fresh)
		if err == nil || !retriable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("recording the answer: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
		got, gerr := s.Store.Get(ctx, types.NamespacedName{Namespace: task.Namespace, Name: task.Name})
		if gerr != nil {
			if apierrors.IsNotFound(gerr) {
				return gerr // deleted meanwhile: nothing left to record on
			}
			continue
		}
		fresh = got
	}
}

// retriable reports a write failure that may pass: a conflict (read again and write again), or the API
// server busy or out of reach.
func retriable(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) // a network failure
	}
	return apierrors.IsConflict(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsTimeout(err)
}

// retryWait is the wait before the next try: the interval, doubled for each error in a row, at most
// maxRetryWait.
func (s *Submitter) retryWait(task *v1alpha1.AsyncTask, interval time.Duration) time.Duration {
	wait := max(interval, time.Second)
	for range min(task.Status.ConsecutiveErrors, 10) {
		wait *= 2
	}
	return min(wait, maxRetryWait)
}

func staleOr(err error) error {
	if apierrors.IsConflict(err) {
		return fmt.Errorf("%w: %v", errStale, err)
	}
	return err
}

// Waits shows a task whose request cannot be sent yet: its backend cannot be used, or has no such operation.
// A task with an attempt on record keeps its status: its records, not this pass, say what it waits for.
func (s *Submitter) Waits(ctx context.Context, task *v1alpha1.AsyncTask, reason, msg string) (*v1alpha1.AsyncTask, error) {
	if r := ReadRecords(task); r.Attempt.Number > 0 || r.TaskID != "" {
		return task, nil
	}
	res, err := s.setStatus(ctx, task, reason, msg, task.Status.Submission, 0)
	return res.Task, err
}
