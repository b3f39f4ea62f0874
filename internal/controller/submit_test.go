package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// expectStarts asserts the job API's counts: start requests received and jobs created.
func expectStarts(g Gomega, api *jobAPI, starts, jobs int) {
	gotStarts, gotJobs, _ := api.counts()
	g.Expect(gotStarts).To(Equal(starts), "start requests the vendor received")
	g.Expect(gotJobs).To(Equal(jobs), "jobs the vendor created")
}

// expectStartsStay asserts the counts hold for a while: nothing more is sent.
func expectStartsStay(g Gomega, api *jobAPI, starts, jobs int) {
	g.Consistently(func(g Gomega) { expectStarts(g, api, starts, jobs) }, 3*time.Second, 250*time.Millisecond).Should(Succeed())
}

func waitForSubmitted(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *v1alpha1.AsyncTask {
	t.Helper()
	return waitForTask(t, ns, name, func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionSubmitted, status, reason)
	})
}

func TestSubmittedTaskStartsItsJobOnceAndTracksIt(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	api := newJobAPI(t, 2)
	createBackend(t, ns, "jobs", jobBackendSpec(api, false, 0), nil)
	createTask(t, ns, "build", "jobs", "", submitting)
	createTask(t, ns, "elsewhere", "jobs", "job-started-elsewhere") // not on the API: fails by TaskNotFound, keeps its ID

	task := waitForPhase(t, ns, "build", v1alpha1.TaskPhaseSucceeded)
	expectSucceededConditions(g, task.Status.Conditions)
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionSubmitted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	g.Expect(task.Status.TaskID).To(Equal("job-1"))
	g.Expect(task.EffectiveTaskID()).To(Equal("job-1"))
	g.Expect(task.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationTaskID, "job-1"))
	g.Expect(task.Annotations).To(HaveKey(v1alpha1.AnnotationSubmitAttempt))
	g.Expect(task.Status.Submission).NotTo(BeNil())
	g.Expect(task.Status.Submission.Attempt).To(Equal(int32(1)))
	g.Expect(task.Status.Submission.ResponseStatus).To(Equal(int32(201)))
	g.Expect(task.Status.Submission.AcceptedTime).NotTo(BeNil())
	expectStartsStay(g, api, 1, 1)

	waitForTask(t, ns, "elsewhere", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.TaskID).To(Equal("job-started-elsewhere"), "a task with spec.taskID gets status.taskID on its first write")
		g.Expect(task.SubmittedCondition()).To(BeNil(), "no Submitted condition without spec.submit")
	})
}

func TestSubmitAnswersWithoutAKey(t *testing.T) {
	cases := map[string]struct {
		answer     jobAnswer
		status     metav1.ConditionStatus
		reason     string
		phase      v1alpha1.TaskPhase
		jobs       int
		wantStatus int32
	}{
		"500": {answer: jobAnswer{status: 500, body: `{"error":"internal"}`, noJob: true}, status: metav1.ConditionUnknown,
			reason: v1alpha1.ReasonSubmitOutcomeUnknown, phase: v1alpha1.TaskPhasePending, wantStatus: 500},
		"429": {answer: jobAnswer{status: 429, body: `{"error":"slow down"}`, noJob: true}, status: metav1.ConditionUnknown,
			reason: v1alpha1.ReasonSubmitOutcomeUnknown, phase: v1alpha1.TaskPhasePending, wantStatus: 429},
		"400": {answer: jobAnswer{status: 400, body: `{"error":"the name is taken"}`, noJob: true}, status: metav1.ConditionFalse,
			reason: v1alpha1.ReasonSubmitRejected, phase: v1alpha1.TaskPhaseFailed, wantStatus: 400},
		"accepted without a readable ID": {answer: jobAnswer{status: 202, body: `{"queued":true}`}, status: metav1.ConditionUnknown,
			reason: v1alpha1.ReasonSubmitOutcomeUnknown, phase: v1alpha1.TaskPhasePending, jobs: 1, wantStatus: 202},
		"a timeout after the request was written": {answer: jobAnswer{hang: true}, status: metav1.ConditionUnknown,
			reason: v1alpha1.ReasonSubmitOutcomeUnknown, phase: v1alpha1.TaskPhasePending, jobs: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ns := newNamespace(t)
			api := newJobAPI(t, 1)
			api.script(tc.answer)
			createBackend(t, ns, "jobs", jobBackendSpec(api, false, 0), nil)
			createTask(t, ns, "job", "jobs", "", submitting)
			task := waitForSubmitted(t, ns, "job", tc.status, tc.reason)
			g.Expect(task.Status.Phase).To(Equal(tc.phase))
			g.Expect(task.Status.Submission.ResponseStatus).To(Equal(tc.wantStatus))
			expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, tc.reason)
			expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, tc.reason)
			if tc.phase == v1alpha1.TaskPhaseFailed {
				expectCondition(g, task.Status.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, tc.reason)
			} else {
				g.Expect(condition(task.Status.Conditions, v1alpha1.ConditionFinished)).To(BeNil())
				g.Expect(task.SubmitOutcomeUnknown()).To(BeTrue())
			}
			expectStartsStay(g, api, 1, tc.jobs)
		})
	}
}

func TestSubmitWithAnIdempotencyKeyResendsWithTheSameKey(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	api := newJobAPI(t, 1)
	// A 503 (no job), then a timeout after the vendor created the job, then the resend with the same key gets
	// the first job's answer.
	api.script(jobAnswer{status: 503, body: `{"error":"busy"}`, noJob: true}, jobAnswer{hang: true})
	createBackend(t, ns, "jobs", jobBackendSpec(api, true, 0), nil)
	createTask(t, ns, "job", "jobs", "", submitting)
	task := waitForPhase(t, ns, "job", v1alpha1.TaskPhaseSucceeded)
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionSubmitted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	g.Expect(task.Status.TaskID).To(Equal("job-1"))
	g.Expect(task.Status.Submission.Attempt).To(Equal(int32(1)), "a resend is the same attempt")
	g.Expect(task.Status.Submission.IdempotencyKey).To(HaveLen(32))
	expectStartsStay(g, api, 3, 1)
}

func TestSubmitConflictingWritesSendOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	api := newJobAPI(t, 3)
	createBackend(t, ns, "jobs", jobBackendSpec(api, false, 0), nil)
	createTask(t, ns, "contended", "jobs", "", submitting)
	// Another writer changes the object all the time while the operator records the attempt and the answer.
	for i := range 30 {
		g.Eventually(func() error {
			task := &v1alpha1.AsyncTask{}
			if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "contended"}, task); err != nil {
				return err
			}
			if task.Annotations == nil {
				task.Annotations = map[string]string{}
			}
			task.Annotations[fmt.Sprintf("other-writer/%d", i)] = "x"
			return k8sClient.Update(context.Background(), task)
		}, eventually, 5*time.Millisecond).Should(Succeed())
	}
	task := waitForPhase(t, ns, "contended", v1alpha1.TaskPhaseSucceeded)
	g.Expect(task.Annotations).To(HaveKey("other-writer/29"))
	expectStartsStay(g, api, 1, 1)
}

func TestSubmitRecordsSurviveReplaceAndStatusLoss(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	api := newJobAPI(t, 1_000_000) // runs until the test ends
	createBackend(t, ns, "jobs", jobBackendSpec(api, false, 0), nil)
	createTask(t, ns, "job", "jobs", "", submitting)
	waitForTask(t, ns, "job", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
	})

	// kubectl replace with the object as it was committed to git: no annotations (metadata lost).
	task := getTask(g, ns, "job")
	replaced := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "job", ResourceVersion: task.ResourceVersion}, Spec: task.Spec}
	g.Expect(k8sClient.Update(ctx, replaced)).To(Succeed())
	waitForTask(t, ns, "job", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationTaskID, "job-1"), "the lost record is written again")
	})
	// The status is lost (a restore without status).
	task = getTask(g, ns, "job")
	task.Status = v1alpha1.AsyncTaskStatus{ObservedGeneration: -1}
	g.Expect(k8sClient.Status().Update(ctx, task)).To(Succeed())
	waitForTask(t, ns, "job", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.TaskID).To(Equal("job-1"), "restored from the annotation")
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionSubmitted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	})
	expectStartsStay(g, api, 1, 1)
}

func TestSubmitResolutions(t *testing.T) {
	cases := map[string]struct {
		resolve      string
		wantReason   string
		wantStatus   metav1.ConditionStatus
		wantPhase    v1alpha1.TaskPhase
		starts, jobs int
	}{
		"adopt":    {resolve: "adopt:job-1", wantReason: v1alpha1.ReasonAdopted, wantStatus: metav1.ConditionTrue, wantPhase: v1alpha1.TaskPhaseSucceeded, starts: 1, jobs: 1},
		"resubmit": {resolve: "resubmit", wantReason: v1alpha1.ReasonAccepted, wantStatus: metav1.ConditionTrue, wantPhase: v1alpha1.TaskPhaseSucceeded, starts: 2, jobs: 2},
		"abandon":  {resolve: "abandon", wantReason: v1alpha1.ReasonSubmitAbandoned, wantStatus: metav1.ConditionFalse, wantPhase: v1alpha1.TaskPhaseFailed, starts: 1, jobs: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ns := newNamespace(t)
			api := newJobAPI(t, 1)
			api.script(jobAnswer{hang: true}) // the job is created, the answer never comes
			createBackend(t, ns, "jobs", jobBackendSpec(api, false, 0), nil)
			createTask(t, ns, "job", "jobs", "", submitting)
			waitForSubmitted(t, ns, "job", metav1.ConditionUnknown, v1alpha1.ReasonSubmitOutcomeUnknown)
			expectStarts(g, api, 1, 1)

			task := getTask(g, ns, "job")
			patch := client.MergeFrom(task.DeepCopy())
			task.Annotations[v1alpha1.AnnotationResolve] = tc.resolve
			g.Expect(k8sClient.Patch(context.Background(), task, patch)).To(Succeed())
			task = waitForPhase(t, ns, "job", tc.wantPhase)
			g.Expect(task.Annotations).NotTo(HaveKey(v1alpha1.AnnotationResolve), "acted on once and removed")
			if tc.wantReason != v1alpha1.ReasonAccepted {
				expectCondition(g, task.Status.Conditions, v1alpha1.ConditionSubmitted, tc.wantStatus, tc.wantReason)
			}
			if tc.resolve == "resubmit" {
				g.Expect(task.Status.Submission.Attempt).To(Equal(int32(2)))
				g.Expect(task.Status.TaskID).To(Equal("job-2"))
			}
			expectStartsStay(g, api, tc.starts, tc.jobs)
		})
	}
}

func TestSubmitBackendWithoutTheOperation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	api := newJobAPI(t, 1)
	spec := jobBackendSpec(api, false, 0)
	spec.Operations[0].Name = "other"
	b := createBackend(t, ns, "jobs", spec, nil)
	createTask(t, ns, "job", "jobs", "", submitting)
	task := waitForSubmitted(t, ns, "job", metav1.ConditionUnknown, v1alpha1.ReasonOperationNotFound)
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonOperationNotFound)
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonOperationNotFound)
	expectStarts(g, api, 0, 0)

	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(b), b)).To(Succeed())
	b.Spec.Operations[0].Name = "start"
	g.Expect(k8sClient.Update(ctx, b)).To(Succeed())
	waitForPhase(t, ns, "job", v1alpha1.TaskPhaseSucceeded)
	expectStartsStay(g, api, 1, 1)
}

func TestSubmitBadOperationMakesTheBackendInvalid(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	api := newJobAPI(t, 1)
	spec := jobBackendSpec(api, false, 0)
	spec.Operations[0].Accepted = "response.stauts == 201"
	b := createBackend(t, ns, "jobs", spec, nil)
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
	g.Expect(ready.Message).To(ContainSubstring("spec.operations[0].accepted"))
}

// TestSubmitOperatorKilledBetweenTheRecordAndTheAnswer kills the operator's process while the vendor holds the
// start request it already acted on: the attempt is recorded, its answer never is. The next operator must not
// send it again on its own unless a key makes that safe.
func TestSubmitOperatorKilledBetweenTheRecordAndTheAnswer(t *testing.T) {
	cases := map[string]struct {
		keyed                bool
		reason               string
		phase                v1alpha1.TaskPhase
		wantStarts, wantJobs int
	}{
		"no key: waits for a person":           {reason: v1alpha1.ReasonSubmitOutcomeUnknown, phase: v1alpha1.TaskPhasePending, wantStarts: 1, wantJobs: 1},
		"idempotency key: resent with the key": {keyed: true, reason: v1alpha1.ReasonAccepted, phase: v1alpha1.TaskPhaseSucceeded, wantStarts: 2, wantJobs: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			shard := "kill-" + ns
			api := newJobAPI(t, 1)
			api.script(jobAnswer{hang: true})
			createBackend(t, ns, "jobs", jobBackendSpec(api, tc.keyed, 0), nil)
			operator := startManagerProcess(t, shard)
			createTask(t, ns, "job", "jobs", "", submitting, shardLabel(shard))
			api.waitForStarts(t, 1)
			recorded := getTask(g, ns, "job")
			g.Expect(recorded.Annotations).To(HaveKey(v1alpha1.AnnotationSubmitAttempt), "recorded before it was sent")
			g.Expect(recorded.Status.Submission).NotTo(BeNil())
			killProcess(t, operator)

			startOperator(t, Options{Shard: shard, FieldOwner: "operator-after-kill"}, false)
			task := waitForSubmitted(t, ns, "job", map[bool]metav1.ConditionStatus{false: metav1.ConditionUnknown, true: metav1.ConditionTrue}[tc.keyed], tc.reason)
			if tc.keyed {
				task = waitForPhase(t, ns, "job", tc.phase)
				g.Expect(task.Status.TaskID).To(Equal("job-1"), "the job of the first send")
			} else {
				g.Expect(task.Status.Message).To(ContainSubstring(v1alpha1.AnnotationResolve), "says what a person can do")
			}
			g.Expect(task.Status.Phase).To(Equal(tc.phase))
			expectStartsStay(g, api, tc.wantStarts, tc.wantJobs)
		})
	}
}

// TestSubmitQueueRunsAtMostMaxRunning: 100 tasks of an operation with maxRunning 5 start in creation order, never
// more than 5 running at once at the vendor, across a restart of the operator, and all finish.
func TestSubmitQueueRunsAtMostMaxRunning(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	shard := "queue-" + ns
	const n, limit = 100, 5
	api := newJobAPI(t, 2)
	createBackend(t, ns, "jobs", jobBackendSpec(api, false, limit), nil)
	stop, _ := startOperator(t, Options{Shard: shard, FieldOwner: "operator-queue-1"}, false)
	for i := range n {
		createTask(t, ns, fmt.Sprintf("job-%03d", i), "jobs", "", submitting, shardLabel(shard))
	}
	waitForTask(t, ns, fmt.Sprintf("job-%03d", n-1), func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Queued()).To(BeTrue(), "the last task waits in the queue")
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQueued)
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonQueued)
	})
	api.waitForStarts(t, n/3)
	stop() // a restart a third of the way through
	startOperator(t, Options{Shard: shard, FieldOwner: "operator-queue-2"}, false)

	g.Eventually(func(g Gomega) {
		tasks := &v1alpha1.AsyncTaskList{}
		g.Expect(k8sClient.List(context.Background(), tasks, client.InNamespace(ns))).To(Succeed())
		g.Expect(tasks.Items).To(HaveLen(n))
		for _, task := range tasks.Items {
			g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded), "task %s", task.Name)
		}
	}, 4*eventually, 250*time.Millisecond).Should(Succeed())
	starts, jobs, most := api.counts()
	g.Expect(starts).To(Equal(n), "one start request per task")
	g.Expect(jobs).To(Equal(n))
	g.Expect(most).To(Equal(limit), "the most jobs running at once at the vendor")
}

func TestSubmitDeletingTasksQueuedOrBeingSent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	api := newJobAPI(t, 1_000_000) // jobs run until the test ends
	createBackend(t, ns, "jobs", jobBackendSpec(api, false, 1), nil)
	running := createTask(t, ns, "running", "jobs", "", submitting)
	waitForPhase(t, ns, "running", v1alpha1.TaskPhaseRunning)
	queued := createTask(t, ns, "queued", "jobs", "", submitting)
	waitForSubmitted(t, ns, "queued", metav1.ConditionUnknown, v1alpha1.ReasonQueued)
	next := createTask(t, ns, "next", "jobs", "", submitting)
	waitForSubmitted(t, ns, "next", metav1.ConditionUnknown, v1alpha1.ReasonQueued)

	g.Expect(k8sClient.Delete(ctx, queued)).To(Succeed()) // deleted while queued: never sent
	expectStartsStay(g, api, 1, 1)
	api.script(jobAnswer{hang: true})
	g.Expect(k8sClient.Delete(ctx, running)).To(Succeed()) // frees the place: next is sent, and held by the vendor
	api.waitForStarts(t, 2)
	g.Expect(k8sClient.Delete(ctx, next)).To(Succeed()) // deleted while being sent
	api.releaseAll()
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(next), &v1alpha1.AsyncTask{}))
	}, eventually, tick).Should(BeTrue())
	expectStartsStay(g, api, 2, 2)
}
