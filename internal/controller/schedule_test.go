package controller

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// scheduledTask is a task the scheduler tests record polls of.
func scheduledTask(name string) *v1alpha1.AsyncTask {
	return &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(name + "-uid")}}
}

// newTestScheduler returns a scheduler without jitter, so that its waits can be compared exactly.
func newTestScheduler() *scheduler {
	s := newScheduler()
	s.jitter = func(d time.Duration) time.Duration { return d }
	return s
}

// TestWakeBringsABackedOffTaskToItsRegularTimeNeverEarlier: a backend's recovery moves a task that backed off
// to when it would have been due without backoff, not to now; a task not backed off is left as it is.
func TestWakeBringsABackedOffTaskToItsRegularTimeNeverEarlier(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newScheduler()
	set := func(task *v1alpha1.AsyncTask, at, regular time.Time) {
		s.tasks[taskKey(task)] = taskSchedule{uid: task.UID, due: at, regular: regular}
	}
	wake := func(task *v1alpha1.AsyncTask) { s.wake(taskKey(task), task.UID) }
	backedOff, onSchedule, probe, unknown := scheduledTask("backed-off"), scheduledTask("on-schedule"), scheduledTask("probe"), scheduledTask("unknown")

	set(backedOff, now.Add(80*time.Second), now.Add(10*time.Second))
	wake(backedOff)
	g.Expect(s.wait(backedOff, now)).To(Equal(10*time.Second), "brought forward to its regular time")
	wake(backedOff)
	g.Expect(s.wait(backedOff, now)).To(Equal(10*time.Second), "waking again changes nothing")

	set(onSchedule, now.Add(10*time.Second), now.Add(10*time.Second))
	wake(onSchedule)
	g.Expect(s.wait(onSchedule, now)).To(Equal(10*time.Second), "never earlier than its own interval")

	set(probe, now.Add(time.Second), now.Add(10*time.Second))
	wake(probe)
	g.Expect(s.wait(probe, now)).To(Equal(time.Second), "a task due before its regular time keeps its time")

	wake(unknown)
	g.Expect(s.wait(unknown, now)).To(BeZero(), "a task never polled stays due")
	s.pollNow(taskKey(backedOff), backedOff.UID)
	g.Expect(s.wait(backedOff, now)).To(BeZero(), "pollNow (a changed backend or Secret) makes it due at once")
}

// TestSchedulerBacksOffAFailingBackendProbesItOncePerIntervalAndWakesOnRecovery walks two tasks of one
// backend through an outage on a fake clock: the first failure probes, the other task backs off, one task per
// interval probes again, and the success that ends the outage reports the recovery; the woken task is brought
// to its regular time.
func TestSchedulerBacksOffAFailingBackendProbesItOncePerIntervalAndWakesOnRecovery(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	s := newTestScheduler()
	a, b := scheduledTask("a"), scheduledTask("b")
	key := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "ns", Name: "vendor"}
	const interval = 10 * time.Second
	failed := pollResult{interval: interval, backend: key, connection: "c1",
		outcome: pollOutcome{err: backend.Errorf(backend.KindTransient, "vendor answered HTTP 503")}}
	answered := pollResult{interval: interval, backend: key, connection: "c1", outcome: pollOutcome{observation: running(10)}}

	next, recovered := s.record(a, answered, 0, clk.Now())
	g.Expect(next).To(Equal(interval), "an answer: the interval")
	g.Expect(recovered).To(BeFalse(), "the backend was not failing")
	g.Expect(s.due(a, clk.Now())).To(BeFalse(), "not due before its time")

	next, _ = s.record(a, failed, 1, clk.Now())
	g.Expect(next).To(Equal(interval), "the first failure of the interval probes")
	next, _ = s.record(b, failed, 3, clk.Now())
	g.Expect(next).To(Equal(40*time.Second), "the third error in a row waits four intervals")

	clk.Step(interval)
	g.Expect(s.due(a, clk.Now())).To(BeTrue())
	next, _ = s.record(a, failed, 2, clk.Now())
	g.Expect(next).To(Equal(interval), "one task probes per interval")
	next, _ = s.record(a, failed, 12, clk.Now())
	g.Expect(next).To(Equal(maxBackoff), "the probe of this interval is taken; backoff is capped")

	clk.Step(interval)
	_, recovered = s.record(a, answered, 0, clk.Now())
	g.Expect(recovered).To(BeTrue(), "the answer after the outage wakes the backend's tasks")
	s.wake(taskKey(b), b.UID)
	g.Expect(s.wait(b, clk.Now())).To(BeZero(), "b was due at its regular time, already past")

	next, recovered = s.record(b, failed, 4, clk.Now())
	g.Expect(recovered).To(BeFalse())
	g.Expect(next).To(Equal(interval), "a failure through a connection that is failing anew probes again")
	g.Expect(s.isFailing(key, "c2")).To(BeFalse(), "a rebuilt connection starts healthy")
}

// TestSchedulerHonoursRetryAfterAndDeadlines: a vendor's Retry-After is the shortest wait, even for a probe; a
// changed spec is due at once; a task past its activeDeadlineSeconds is never due.
func TestSchedulerHonoursRetryAfterAndDeadlines(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	s := newTestScheduler()
	task := scheduledTask("t")
	task.CreationTimestamp = metav1.NewTime(clk.Now())
	task.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
	limited := pollResult{interval: time.Second, connection: "c1",
		outcome: pollOutcome{err: &backend.Error{Kind: backend.KindTransient, Message: "429", RetryAfter: 30 * time.Second}}}

	next, _ := s.record(task, limited, 1, clk.Now())
	g.Expect(next).To(Equal(30*time.Second), "Retry-After outlasts the probe's interval")
	g.Expect(s.due(task, clk.Now())).To(BeFalse())
	task.Generation = 2
	g.Expect(s.due(task, clk.Now())).To(BeTrue(), "a spec changed since the last poll is due at once")
	task.Status.ObservedGeneration = 2
	g.Expect(s.due(task, clk.Now())).To(BeFalse())

	clk.Step(10 * time.Minute)
	g.Expect(s.due(task, clk.Now())).To(BeFalse(), "past activeDeadlineSeconds: never polled again")
	g.Expect(s.afterDeferred(time.Second)).To(Equal(time.Second))
}

// TestSchedulerForgetsFinishedAndGoneTasks: a task this process finished is never due again until the cache
// shows its status; a recreated task of the same name starts afresh.
func TestSchedulerForgetsFinishedAndGoneTasks(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newTestScheduler()
	task := scheduledTask("t")
	s.finish(taskKey(task), task.UID)
	g.Expect(s.isFinished(taskKey(task), task.UID)).To(BeTrue())
	s.pollNow(taskKey(task), task.UID)
	g.Expect(s.isFinished(taskKey(task), task.UID)).To(BeTrue(), "a changed backend does not revive a finished task")
	g.Expect(s.isFinished(taskKey(task), "other-uid")).To(BeFalse(), "a recreated task is not the finished one")
	s.forget(taskKey(task), task.UID)
	g.Expect(s.isFinished(taskKey(task), task.UID)).To(BeFalse())

	s.record(task, pollResult{interval: time.Minute, outcome: pollOutcome{observation: running(1)}}, 0, now)
	s.forget(taskKey(task), "")
	g.Expect(s.wait(task, now)).To(BeZero(), "a task gone from the API server is forgotten")
}

// TestFirstPollAfterARestartIsSpreadOverOneInterval: a process that meets a task it has not scheduled (after a
// restart or a leader change) polls it at once only when it was never polled or its spec changed; any other
// task is placed within one interval at a phase fixed by its UID, the same in every process, and 10,000 tasks
// so placed spread evenly over the interval.
func TestFirstPollAfterARestartIsSpreadOverOneInterval(t *testing.T) {
	g := NewWithT(t)
	const interval = 10 * time.Second
	now := time.Date(2026, 12, 2, 0, 0, 3, 250_000_000, time.UTC)
	every := func() time.Duration { return interval }
	polledBefore := func(name string) *v1alpha1.AsyncTask {
		task := scheduledTask(name)
		task.Generation, task.Status.ObservedGeneration, task.Status.Phase = 2, 2, v1alpha1.TaskPhaseRunning
		return task
	}
	placed := func(s *scheduler, task *v1alpha1.AsyncTask, at time.Time) time.Duration {
		s.place(task, every, at)
		return s.wait(task, at)
	}

	g.Expect(placed(newScheduler(), scheduledTask("new"), now)).To(BeZero(), "never polled: at once")
	changed := polledBefore("changed")
	changed.Generation = 3
	g.Expect(placed(newScheduler(), changed, now)).To(BeZero(), "spec changed since its status: at once")

	task := polledBefore("running")
	first := placed(newScheduler(), task, now)
	g.Expect(first).To(BeNumerically(">=", 0))
	g.Expect(first).To(BeNumerically("<", interval))
	g.Expect(placed(newScheduler(), task, now.Add(3*interval))).To(Equal(first), "another process, intervals later: the same phase")
	g.Expect(placed(newScheduler(), task, now.Add(first))).To(BeZero(), "a process starting at that phase polls it at once")

	s := newScheduler()
	g.Expect(s.pollNow(taskKey(task), task.UID)).To(BeFalse(), "a start's initial list of backends and Secrets moves no task it has not placed")
	s.place(task, every, now)
	s.place(task, func() time.Duration { panic("a known task is not placed again") }, now.Add(time.Second))
	g.Expect(s.wait(task, now)).To(Equal(first))
	s.pollNow(taskKey(task), task.UID)
	g.Expect(s.wait(task, now)).To(BeZero(), "pollNow (its backend or Secret changed) still means at once")
	s.place(task, every, now)
	g.Expect(s.wait(task, now)).To(BeZero(), "and place does not spread it again")

	const tasks = 10_000
	perSecond := make([]int, int(interval/time.Second))
	s = newScheduler()
	for i := range tasks {
		task := polledBefore(fmt.Sprintf("task-%05d", i))
		task.UID = types.UID(fmt.Sprintf("%08x-6b1e-4d6a-9c1f-%012x", i*2654435761, i))
		perSecond[int(placed(s, task, now)/time.Second)]++
	}
	for second, n := range perSecond {
		g.Expect(n).To(BeNumerically("~", tasks/len(perSecond), tasks/len(perSecond)/10),
			"second %d of the interval holds %d of %d first polls (steady: %d)", second, n, tasks, tasks/len(perSecond))
	}
}

// On a ring, a task gained from another replica is first polled at its own moment of the interval after its
// hold, and every poll that answered is followed by the next at that moment, at least half an interval later.
func TestRingTasksKeepTheirMomentAcrossHandovers(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 0, 0, 3, 0, time.UTC)
	interval := 10 * time.Second
	momentOf := func(at time.Time) time.Duration {
		return time.Duration(at.UnixNano() % int64(interval))
	}
	s := newTestScheduler()
	s.onPhase = true
	polled := scheduledTask("polled")
	polled.Status = v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning}
	moment := momentOf(now.Add(phaseOffset(polled.UID, interval, now)))

	hold := now.Add(2 * time.Second)
	s.holdUntil(taskKey(polled), polled.UID, now.Add(-time.Second)) // an earlier hold is replaced by a later one only
	s.holdUntil(taskKey(polled), polled.UID, hold)
	s.holdUntil(taskKey(polled), polled.UID, now.Add(time.Second))
	s.place(polled, func() time.Duration { return interval }, now)
	first := now.Add(s.wait(polled, now))
	g.Expect(first).NotTo(BeTemporally("<", hold), "not before the hold")
	g.Expect(first).To(BeTemporally("<", hold.Add(interval)))
	g.Expect(momentOf(first)).To(Equal(moment), "at the task's own moment")

	for _, late := range []time.Duration{0, 3 * time.Second, 4900 * time.Millisecond, 5100 * time.Millisecond} {
		at := first.Add(late)
		next, _ := s.record(polled, pollResult{interval: interval}, 0, at)
		g.Expect(next).To(BeNumerically(">=", interval/2), "polled %s late", late)
		g.Expect(next).To(BeNumerically("<", interval+interval/2))
		g.Expect(momentOf(at.Add(next))).To(Equal(moment), "polled %s late: back on its moment", late)
	}

	fresh := scheduledTask("never-polled") // nobody polled it: at once once the hold has passed
	s.holdUntil(taskKey(fresh), fresh.UID, hold)
	s.place(fresh, func() time.Duration { return interval }, now)
	g.Expect(s.wait(fresh, now)).To(Equal(2 * time.Second))

	placed := scheduledTask("placed") // already on this replica's schedule: a hold changes nothing
	s.place(placed, func() time.Duration { return interval }, now)
	s.holdUntil(taskKey(placed), placed.UID, hold)
	g.Expect(s.wait(placed, now)).To(BeZero())
}
