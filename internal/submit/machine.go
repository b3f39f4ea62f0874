package submit

import (
	"bytes"
	"net/http"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Recovery is how an attempt whose outcome is unknown may be settled without a person.
type Recovery int

const (
	// RecoverByPerson means no key makes a repeat safe; the task waits for the resolve annotation.
	RecoverByPerson Recovery = iota
	// RecoverByKey means the operation sends an idempotency key, so the attempt is resent with the same key.
	RecoverByKey
	// RecoverByProbe means ZStack. The job UUID the operator chose is asked for; only an answer that no such job
	// exists lets the same request (same UUID) be sent again, and the vendor refuses a repeated UUID anyway.
	RecoverByProbe
)

// probeWindow is how long after an attempt a ZStack answer "no such job" is believed: ZStack purges finished
// jobs 3 hours after they end, so later a job that did run may read as never created. An attempt older than
// this waits for a person instead.
const probeWindow = 2 * time.Hour

// Action is what one pass of the protocol does, decided from the records alone.
type Action int

const (
	// ActTrack means the job's ID is recorded; the task is tracked like one with spec.taskID (a lost record is
	// written again first).
	ActTrack Action = iota
	// ActStart means no attempt was ever made: wait for a place in the queue, record attempt 1, send it.
	ActStart
	// ActResend means the last attempt's outcome is unknown and its key makes a repeat safe: send it again, same key.
	ActResend
	// ActProbe means the last attempt's outcome is unknown on ZStack: ask the vendor for the job UUID.
	ActProbe
	// ActWait means the last attempt's outcome is unknown and nothing makes a repeat safe: wait for a person.
	ActWait
	// ActAdopt carries out a person's resolution adopt:<taskID>.
	ActAdopt
	// ActResubmit carries out a person's resolution resubmit.
	ActResubmit
	// ActAbandon carries out a person's resolution abandon.
	ActAbandon
	// ActDropResolve means the resolve annotation cannot be acted on; it is removed with a Warning event saying why.
	ActDropResolve
)

var actionNames = map[Action]string{ActTrack: "track", ActStart: "start", ActResend: "resend", ActProbe: "probe",
	ActWait: "wait", ActAdopt: "adopt", ActResubmit: "resubmit", ActAbandon: "abandon", ActDropResolve: "drop-resolve"}

func (a Action) String() string { return actionNames[a] }

// Decide says what to do next from a task's records, how its operation recovers an unknown outcome, and the
// time. It never sends: sending is what the protocol does for ActStart, ActResend, ActProbe and ActResubmit,
// each only after the attempt is recorded.
func Decide(r Records, recovery Recovery, now time.Time) Action {
	if r.TaskID != "" {
		return ActTrack // a resolve annotation left over is removed while the records are repaired
	}
	if r.Resolve != "" {
		res, err := parseResolve(r.Resolve)
		switch {
		case err != nil:
			return ActDropResolve
		case res.kind == v1alpha1.ResolveAdoptPrefix:
			return ActAdopt
		case res.kind == v1alpha1.ResolveAbandon:
			return ActAbandon
		case r.Attempt.Number == 0:
			return ActDropResolve // resubmit, but nothing was ever sent
		default:
			return ActResubmit
		}
	}
	if r.Attempt.Number == 0 {
		return ActStart
	}
	switch recovery {
	case RecoverByKey:
		return ActResend
	case RecoverByProbe:
		if !r.Attempt.Time.IsZero() && now.Sub(r.Attempt.Time) < probeWindow {
			return ActProbe
		}
	}
	return ActWait
}

// Outcome is what became of one send.
type Outcome int

const (
	// NotSent means the request certainly did not reach the vendor, or the vendor did not act on it (it refused the
	// credentials). It is no attempt: retried with backoff.
	NotSent Outcome = iota
	// Accepted means the vendor took the job and its ID was read.
	Accepted
	// Rejected means the vendor refused the job (a 4xx answer the accepted condition does not take).
	Rejected
	// Unknown means the request may have reached the vendor and no answer says what it did.
	Unknown
	// InProgress means a 409 to a request with an idempotency key: the vendor is still working on the first request
	// with that key. Ask again later, same key.
	InProgress
)

var outcomeNames = map[Outcome]string{NotSent: "not sent", Accepted: "accepted", Rejected: "rejected", Unknown: "unknown", InProgress: "in progress"}

func (o Outcome) String() string { return outcomeNames[o] }

// Sent is everything one send produced, for Classify.
type Sent struct {
	// Response is the vendor's answer, nil when there was none.
	Response *backend.Response
	// Err is why there was no answer.
	Err error
	// Written says whether the start request reached the wire (backend.WriteTrace).
	Written bool
	// Accepted and TaskID are what the operation's expressions read from the answer; AnswerErr is set when
	// they could not be evaluated.
	Accepted  bool
	TaskID    string
	AnswerErr error
	// Keyed says the request carried an idempotency key (a 409 then means "still working").
	Keyed bool
	// Key is the key sent; on ZStack a refusal "Duplicate job uuid" means the job with this UUID exists.
	Key      string
	Recovery Recovery
}

// zstackDuplicateJob is the text of ZStack's refusal of a repeated X-Job-UUID.
var zstackDuplicateJob = []byte("Duplicate job uuid")

// Classify sorts a send into the contract's outcomes. Only what certainly did not reach the vendor, or what the
// vendor certainly did not act on, is NotSent; everything that may have started the job and gave no ID is
// Unknown.
func Classify(s Sent) (Outcome, string) {
	if s.Err != nil {
		switch backend.KindOf(s.Err) {
		case backend.KindDeferred, backend.KindInvalidConfig, backend.KindAuthentication:
			// Not sent (rate limit, network policy), or refused before the vendor acted (credentials).
			return NotSent, ""
		}
		if !s.Written {
			return NotSent, ""
		}
		return Unknown, ""
	}
	resp := s.Response
	if s.AnswerErr != nil {
		return Unknown, s.TaskID
	}
	if s.Accepted {
		if s.TaskID == "" {
			return Unknown, ""
		}
		return Accepted, s.TaskID
	}
	code := resp.StatusCode
	switch {
	case s.Recovery == RecoverByProbe && bytes.Contains(resp.Body, zstackDuplicateJob):
		return Accepted, s.Key // the job with our UUID exists: this is the job we started
	case code == http.StatusConflict && s.Keyed:
		return InProgress, ""
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return NotSent, "" // the Sender already renewed the session once; the vendor did not act
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		return Unknown, ""
	case code >= 400 && code < 500:
		return Rejected, ""
	}
	return Unknown, "" // 5xx, or an answer the accepted condition does not take that is not a refusal
}
