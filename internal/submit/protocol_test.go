package submit

import (
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

var accepted = answer{status: 201, body: `{"id":"%s"}`}

func reasonOf(task *v1alpha1.AsyncTask) string {
	if c := task.SubmittedCondition(); c != nil {
		return c.Reason
	}
	return ""
}

// protocolCase is one way a submission can go: the vendor's answers, what happens to the process and the
// object between passes, and what must hold at the end. Every case counts the start requests the vendor
// received and the jobs it created.
type protocolCase struct {
	recovery Recovery
	answers  []answer
	// script drives the passes; the default is one pass.
	script       func(t *testing.T, c *caseRun)
	wantReceived int
	wantJobs     int
	wantReason   string
	wantTaskID   bool
}

type caseRun struct {
	store  *fakeStore
	vendor *fakeVendor
	clock  *clocktesting.FakeClock
	rec    Recovery
}

func (c *caseRun) pass(t *testing.T) (Result, string, error) {
	t.Helper()
	return runPass(t, c.store, c.vendor, c.clock, c.rec)
}

// passUntilSettled runs passes (each a new process) until one neither errs nor asks to run again soon.
func (c *caseRun) passUntilSettled(t *testing.T) {
	t.Helper()
	for range 10 {
		res, crashed, err := c.pass(t)
		if crashed == "" && err == nil && (res.RetryAfter == 0 || res.TaskID != "") {
			return
		}
		c.clock.Step(res.RetryAfter + time.Second)
	}
	t.Fatalf("not settled after 10 passes: %s", reasonOf(c.store.current()))
}

func TestSubmissionProtocol(t *testing.T) {
	cases := map[string]protocolCase{
		"accepted at once": {answers: []answer{accepted}, wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true},
		"crash after the attempt was recorded, before the send: no key waits for a person": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.store.crashAt["status"] = 1
				if _, crashed, _ := c.pass(t); crashed != "status" {
					t.Fatalf("crashed at %q", crashed)
				}
				c.passUntilSettled(t)
			},
			wantReceived: 0, wantJobs: 0, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"crash after the vendor answered, before the answer was recorded: no key waits for a person": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.vendor.crashSend = true
				if _, crashed, _ := c.pass(t); crashed != "send" {
					t.Fatalf("crashed at %q", crashed)
				}
				c.vendor.crashSend = false
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"crash after the vendor answered: an idempotency key resends with the same key": {
			recovery: RecoverByKey, answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.vendor.crashSend = true
				_, _, _ = c.pass(t) // the crash, not the result, is the point
				c.vendor.crashSend = false
				c.passUntilSettled(t)
			},
			wantReceived: 2, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"crash after the vendor created the job: ZStack finds the job by its UUID and sends nothing": {
			recovery: RecoverByProbe, answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.vendor.crashSend = true
				_, _, _ = c.pass(t) // the crash, not the result, is the point
				c.vendor.crashSend = false
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"crash before the vendor created the job: ZStack is told there is none and sends the same UUID again": {
			recovery: RecoverByProbe, answers: []answer{{hang: true, noJob: true}, accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.store.crashAt["status"] = 2 // the answer's record: the hang ended in an unknown outcome
				_, _, _ = c.pass(t)           // the crash, not the result, is the point
				c.passUntilSettled(t)
			},
			wantReceived: 2, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"ZStack, attempt older than the purge of finished jobs: waits for a person": {
			recovery: RecoverByProbe, answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.vendor.crashSend = true
				_, _, _ = c.pass(t) // the crash, not the result, is the point
				c.vendor.crashSend, c.vendor.purged = false, true
				c.clock.Step(3 * time.Hour)
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"the metadata record conflicts: nothing is sent, the next pass sends once": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.store.fail["meta"] = 1
				if _, _, err := c.pass(t); err == nil {
					t.Fatal("want the conflict reported")
				}
				if got, _ := c.vendor.counts(); got != 0 {
					t.Fatalf("sent %d after a refused record", got)
				}
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"the status record conflicts: the metadata record is undone, nothing is sent, the next pass sends once": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.store.fail["status"] = 1
				if _, _, err := c.pass(t); err == nil {
					t.Fatal("want the conflict reported")
				}
				if _, ok := c.store.current().Annotations[v1alpha1.AnnotationSubmitAttempt]; ok {
					t.Fatal("the metadata record of an attempt never sent was left")
				}
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"the status record and then its undo conflict: the undo reads again, nothing is sent, the next pass sends once": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.store.fail["status"] = 1
				c.store.fail["meta"] = 2 // the undo's first try: another writer changed the task
				if _, _, err := c.pass(t); err == nil {
					t.Fatal("want the conflict reported")
				}
				if _, ok := c.store.current().Annotations[v1alpha1.AnnotationSubmitAttempt]; ok {
					t.Fatal("the metadata record of an attempt never sent was left")
				}
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"the answer's records conflict: they are written again, nothing is sent twice": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.store.fail["meta"] = 2   // the task-id annotation
				c.store.fail["status"] = 2 // the accepted status
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"a timeout after the request was written: no key waits for a person": {
			answers: []answer{{hang: true}}, wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"a timeout after the request was written: a key resends and gets the first job": {
			recovery: RecoverByKey, answers: []answer{{hang: true}, accepted},
			script:       func(t *testing.T, c *caseRun) { t.Helper(); c.passUntilSettled(t) },
			wantReceived: 2, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"nothing listens: not an attempt, taken back and sent again once the vendor is up": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.vendor.down = true
				res, _, err := c.pass(t)
				if err != nil || res.RetryAfter == 0 {
					t.Fatalf("want a retry, got %v %v", res.RetryAfter, err)
				}
				if got := c.store.current(); got.Annotations[v1alpha1.AnnotationSubmitAttempt] != "" || got.Status.Submission != nil {
					t.Fatalf("an attempt never sent is still recorded: %v %+v", got.Annotations, got.Status.Submission)
				}
				c.vendor.down = false
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"500: no key waits for a person": {
			answers: []answer{{status: 500, body: `{"error":"boom %s"}`, noJob: true}}, wantReceived: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"429: no key waits for a person": {
			answers: []answer{{status: 429, body: `slow down %s`, noJob: true}}, wantReceived: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"503 with a key: resent with the same key until accepted": {
			recovery: RecoverByKey, answers: []answer{{status: 503, body: `busy %s`, noJob: true}, accepted},
			script:       func(t *testing.T, c *caseRun) { t.Helper(); c.passUntilSettled(t) },
			wantReceived: 2, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"409 to a key: still working, asked again with the same key": {
			recovery: RecoverByKey, answers: []answer{{hang: true}, {status: 409, body: `in progress %s`, noJob: true}, accepted},
			script:       func(t *testing.T, c *caseRun) { t.Helper(); c.passUntilSettled(t) },
			wantReceived: 3, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"400: rejected, the task fails": {
			answers: []answer{{status: 400, body: `{"error":"bad %s"}`, noJob: true}}, wantReceived: 1, wantReason: v1alpha1.ReasonSubmitRejected,
		},
		"401: the vendor did not act; not an attempt, retried": {
			answers:      []answer{{status: 401, body: `no %s`, noJob: true}, accepted},
			script:       func(t *testing.T, c *caseRun) { t.Helper(); c.passUntilSettled(t) },
			wantReceived: 2, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"accepted without a readable ID: no key waits for a person": {
			answers: []answer{{status: 202, body: `{"other":"%s"}`}}, wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"kubectl replace after acceptance drops the annotations: restored, nothing sent": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.passUntilSettled(t)
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Annotations = nil })
				c.passUntilSettled(t)
				if c.store.current().Annotations[v1alpha1.AnnotationTaskID] != "job-1" {
					t.Fatal("the task-id annotation was not restored")
				}
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"status lost after acceptance: restored from the annotation, nothing sent": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.passUntilSettled(t)
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Status = v1alpha1.AsyncTaskStatus{ObservedGeneration: -1} })
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"status lost while the answer was not recorded: the annotation stops a second send": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.vendor.crashSend = true
				_, _, _ = c.pass(t) // the crash, not the result, is the point
				c.vendor.crashSend = false
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Status = v1alpha1.AsyncTaskStatus{ObservedGeneration: -1} })
				c.passUntilSettled(t)
				if c.store.current().Status.Submission == nil {
					t.Fatal("the status record of the attempt was not restored")
				}
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"metadata lost while the answer was not recorded: the status stops a second send": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.vendor.crashSend = true
				_, _, _ = c.pass(t) // the crash, not the result, is the point
				c.vendor.crashSend = false
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Annotations = nil })
				c.passUntilSettled(t)
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"a person adopts the job": {
			answers: []answer{{hang: true}},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.passUntilSettled(t)
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Annotations[v1alpha1.AnnotationResolve] = "adopt:job-1" })
				c.passUntilSettled(t)
				got := c.store.current()
				if got.Status.TaskID != "job-1" || got.Annotations[v1alpha1.AnnotationResolve] != "" {
					t.Fatalf("adopted %q, annotation %q left", got.Status.TaskID, got.Annotations[v1alpha1.AnnotationResolve])
				}
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonAdopted, wantTaskID: true,
		},
		"a person resubmits: a new attempt with a new key": {
			answers: []answer{{hang: true}, accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.passUntilSettled(t)
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Annotations[v1alpha1.AnnotationResolve] = "resubmit" })
				c.passUntilSettled(t)
				got := c.store.current()
				if got.Status.Submission.Attempt != 2 || got.Status.Submission.IdempotencyKey == KeyFor(got.UID, 1) {
					t.Fatalf("submission %+v", got.Status.Submission)
				}
			},
			wantReceived: 2, wantJobs: 2, wantReason: v1alpha1.ReasonAccepted, wantTaskID: true,
		},
		"a person abandons the job": {
			answers: []answer{{hang: true}},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.passUntilSettled(t)
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Annotations[v1alpha1.AnnotationResolve] = "abandon" })
				c.passUntilSettled(t)
				if got := c.store.current(); got.Status.Phase != v1alpha1.TaskPhaseFailed {
					t.Fatalf("phase %s", got.Status.Phase)
				}
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitAbandoned,
		},
		"a resolve annotation that is not one is removed, and nothing changes": {
			answers: []answer{{hang: true}},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				c.passUntilSettled(t)
				c.store.edit(func(o *v1alpha1.AsyncTask) { o.Annotations[v1alpha1.AnnotationResolve] = "adopt:" })
				c.passUntilSettled(t)
				if got := c.store.current(); got.Annotations[v1alpha1.AnnotationResolve] != "" {
					t.Fatal("left")
				}
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitOutcomeUnknown,
		},
		"the task is deleted while its request is in flight: the answer finds no object, nothing more is sent": {
			answers: []answer{accepted},
			script: func(t *testing.T, c *caseRun) {
				t.Helper()
				res, _, err := runPassDeleting(t, c)
				if err == nil || res.TaskID != "" {
					t.Fatalf("want the deletion reported, got %v %v", res.TaskID, err)
				}
			},
			wantReceived: 1, wantJobs: 1, wantReason: v1alpha1.ReasonSubmitting,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := &caseRun{store: newFakeStore(), vendor: newFakeVendor(t, tc.recovery == RecoverByKey, tc.answers...),
				clock: clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)), rec: tc.recovery}
			if tc.recovery == RecoverByProbe {
				c.vendor.keyed = true // the fake's job key: ZStack's X-Job-UUID plays the part
			}
			if tc.script == nil {
				c.passUntilSettled(t)
			} else {
				tc.script(t, c)
			}
			received, jobs := c.vendor.counts()
			if received != tc.wantReceived || jobs != tc.wantJobs {
				t.Errorf("vendor received %d start requests and created %d jobs, want %d and %d", received, jobs, tc.wantReceived, tc.wantJobs)
			}
			got := c.store.current()
			if r := reasonOf(got); r != tc.wantReason {
				t.Errorf("Submitted reason %q (%s), want %q", r, got.Status.Message, tc.wantReason)
			}
			if tc.wantTaskID != (got.Status.TaskID != "") {
				t.Errorf("status.taskID %q", got.Status.TaskID)
			}
			if tc.wantTaskID && got.Annotations[v1alpha1.AnnotationTaskID] != got.Status.TaskID {
				t.Errorf("annotation task-id %q, status %q", got.Annotations[v1alpha1.AnnotationTaskID], got.Status.TaskID)
			}
			if got.Status.Submission != nil && got.Status.Submission.Attempt > 0 && got.Status.Submission.IdempotencyKey != KeyFor(got.UID, got.Status.Submission.Attempt) {
				t.Errorf("key %q is not the attempt's", got.Status.Submission.IdempotencyKey)
			}
		})
	}
}

// runPassDeleting runs a pass during which the task is deleted as soon as the vendor received the request.
func runPassDeleting(t *testing.T, c *caseRun) (Result, string, error) {
	t.Helper()
	c.vendor.onReceive = func() {
		c.store.mu.Lock()
		c.store.deleted = true
		c.store.mu.Unlock()
	}
	return c.pass(t)
}

func TestStatusFollowsTheSubmittedTable(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	type row struct {
		submitted                      metav1.ConditionStatus
		ready                          string
		reconciling, stalled, finished bool
		phase                          v1alpha1.TaskPhase
	}
	want := map[string]row{
		v1alpha1.ReasonQueued:               {metav1.ConditionUnknown, v1alpha1.ReasonQueued, true, false, false, v1alpha1.TaskPhasePending},
		v1alpha1.ReasonSubmitting:           {metav1.ConditionUnknown, v1alpha1.ReasonSubmitting, true, false, false, v1alpha1.TaskPhasePending},
		v1alpha1.ReasonAccepted:             {metav1.ConditionTrue, v1alpha1.ReasonPending, true, false, false, v1alpha1.TaskPhasePending},
		v1alpha1.ReasonAdopted:              {metav1.ConditionTrue, v1alpha1.ReasonPending, true, false, false, v1alpha1.TaskPhasePending},
		v1alpha1.ReasonSubmitRejected:       {metav1.ConditionFalse, v1alpha1.ReasonSubmitRejected, false, true, true, v1alpha1.TaskPhaseFailed},
		v1alpha1.ReasonSubmitOutcomeUnknown: {metav1.ConditionUnknown, v1alpha1.ReasonSubmitOutcomeUnknown, false, true, false, v1alpha1.TaskPhasePending},
		v1alpha1.ReasonSubmitAbandoned:      {metav1.ConditionFalse, v1alpha1.ReasonSubmitAbandoned, false, true, true, v1alpha1.TaskPhaseFailed},
		v1alpha1.ReasonOperationNotFound:    {metav1.ConditionUnknown, v1alpha1.ReasonOperationNotFound, true, false, false, v1alpha1.TaskPhasePending},
	}
	for reason, w := range want {
		// From a status that had every condition, so that absent ones are seen removed.
		st := v1alpha1.AsyncTaskStatus{}
		for _, ct := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled, v1alpha1.ConditionFinished} {
			st.Conditions = append(st.Conditions, metav1.Condition{Type: ct, Status: metav1.ConditionTrue, Reason: "Old"})
		}
		got := statusFor(task, st, reason, "m", now)
		has := func(ct string) bool {
			for _, c := range got.Conditions {
				if c.Type == ct {
					return c.Status == metav1.ConditionTrue && c.ObservedGeneration == 2
				}
			}
			return false
		}
		var ready, submitted *metav1.Condition
		for i := range got.Conditions {
			switch got.Conditions[i].Type {
			case v1alpha1.ConditionReady:
				ready = &got.Conditions[i]
			case v1alpha1.ConditionSubmitted:
				submitted = &got.Conditions[i]
			}
		}
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != w.ready || submitted == nil || submitted.Status != w.submitted ||
			submitted.Reason != reason || has(v1alpha1.ConditionReconciling) != w.reconciling || has(v1alpha1.ConditionStalled) != w.stalled ||
			has(v1alpha1.ConditionFinished) != w.finished || got.Phase != w.phase || got.ObservedGeneration != 2 {
			t.Errorf("%s: %+v", reason, got)
		}
	}
}
