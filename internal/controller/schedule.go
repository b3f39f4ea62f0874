package controller

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// maxBackoff caps the wait between polls of a task whose backend keeps failing.
const maxBackoff = 5 * time.Minute

func durationOr(d *metav1.Duration, fallback time.Duration) time.Duration { //nolint:unparam // both defaults are 10s today; they need not stay equal
	if d == nil || d.Duration <= 0 {
		return fallback
	}
	return d.Duration
}

// withJitter spreads polls of many tasks with one interval over a tenth of it, so tasks created together do
// not poll together for ever.
func withJitter(d time.Duration) time.Duration {
	// Centred (±5%), so that on average a task is polled exactly once per interval.
	return d - d/20 + rand.N(d/10+1) //nolint:gosec // G404: jitter needs no unpredictability
}

// scheduler decides when each task is polled. It remembers when each task is next due, so that a reconcile
// that arrives early (a repeated timer, a watch event) does not poll the vendor before its time; when it would
// be due without backoff (its regular time), so that a backend's recovery wakes it no earlier than its own
// interval; which tasks this process saw finish, so that a reconcile from a cache that has not caught up with
// that status write never polls again; and the health of each backend (see backendHealth). It holds no clock:
// every call is given the time.
type scheduler struct {
	// jitter spreads a wait; withJitter, or a fixed function in tests.
	jitter func(time.Duration) time.Duration
	// onPhase, set with a ring, polls each answering task at its own moment of the interval (nextPhase) instead
	// of an interval with jitter after its last poll, so that a replica that takes a task over polls it when the
	// one that had it would have.
	onPhase bool
	// joinedHold, set with a ring, is the earliest time a task not placed yet may be polled when no handover
	// held it: the replica may hold it since it joined the ring, from a replica that may not know yet.
	joinedHold func() time.Time

	mu    sync.Mutex
	tasks map[types.NamespacedName]taskSchedule
	// holds keeps the tasks not placed yet that may not be polled before a time (see holdUntil).
	holds map[types.NamespacedName]taskHold
	// failing holds the backends whose last poll failed; a backend not in it is healthy.
	failing map[backendKey]backendHealth
}

// taskHold is the earliest time a task not placed yet may be polled.
type taskHold struct {
	uid   types.UID
	until time.Time
}

// taskSchedule is what the scheduler knows of one task.
type taskSchedule struct {
	uid          types.UID
	due, regular time.Time
	// finished is set when this process wrote the task's final status.
	finished bool
}

func newScheduler() *scheduler {
	return &scheduler{jitter: withJitter, tasks: map[types.NamespacedName]taskSchedule{}, holds: map[types.NamespacedName]taskHold{},
		failing: map[backendKey]backendHealth{}}
}

func taskKey(task *v1alpha1.AsyncTask) types.NamespacedName {
	return types.NamespacedName{Namespace: task.Namespace, Name: task.Name}
}

// lookup returns the schedule of the task with uid; the zero schedule when the scheduler knows no such task.
// The caller holds mu.
func (s *scheduler) lookup(key types.NamespacedName, uid types.UID) taskSchedule {
	if ts, ok := s.tasks[key]; ok && ts.uid == uid {
		return ts
	}
	return taskSchedule{uid: uid}
}

// place gives a task that this process has not scheduled yet its first due time (see polledBefore), never
// before its hold (holdUntil, joinedHold). interval is asked only for a task polled before: it may read the
// task's backend.
func (s *scheduler) place(task *v1alpha1.AsyncTask, interval func() time.Duration, now time.Time) {
	s.mu.Lock()
	known := s.tasks[taskKey(task)].uid == task.UID
	s.mu.Unlock()
	if known {
		return
	}
	from := now
	if s.joinedHold != nil {
		from = maxTime(from, s.joinedHold())
	}
	s.mu.Lock()
	if hold, ok := s.holds[taskKey(task)]; ok && hold.uid == task.UID {
		from = maxTime(from, hold.until)
	}
	s.mu.Unlock()
	due := from
	if polledBefore(task) {
		due = from.Add(phaseOffset(task.UID, interval(), from))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tasks[taskKey(task)].uid != task.UID { // not placed meanwhile by another worker or pollNow
		s.tasks[taskKey(task)] = taskSchedule{uid: task.UID, due: due, regular: due}
		delete(s.holds, taskKey(task))
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// holdUntil keeps a task that is not placed yet from being polled before until (a zero time holds nothing): a
// task this replica gained on the ring waits until the replica that had it knows it lost it (ringHandover).
// A later hold of the same task wins only when it is later.
func (s *scheduler) holdUntil(key types.NamespacedName, uid types.UID, until time.Time) {
	if until.IsZero() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts, ok := s.tasks[key]; ok && ts.uid == uid {
		return // placed already: it keeps its schedule
	}
	if hold, ok := s.holds[key]; ok && hold.uid == uid && !hold.until.Before(until) {
		return
	}
	s.holds[key] = taskHold{uid: uid, until: until}
}

// polledBefore reports whether an earlier process polled the task: it has a status for its current spec.
// place polls a task that was never polled, or whose spec changed since its status was written, at once. Any
// other task was being polled by an earlier process (a restart, a new leader); when it last was is not in its
// status (status is written only on change), so it is placed within one interval at a moment fixed by its UID
// (phaseOffset). A restart then asks the vendor what a steady interval asks, instead of every task at once,
// and two processes place a task at the same moment of the interval.
// A task whose job the operator started has a status before its first poll: it counts as polled once a
// poll's observation or error is in it.
func polledBefore(task *v1alpha1.AsyncTask) bool {
	st := &task.Status
	if task.Spec.Submit != nil && st.LastProgressTime == nil && st.ConsecutiveErrors == 0 {
		return false
	}
	return st.Phase != "" && st.ObservedGeneration == task.Generation
}

// phaseOffset is the wait from now until the next moment whose offset within interval (counted from the Unix
// epoch) equals a hash of uid: uniform over [0, interval) across tasks, the same for one task in every process.
func phaseOffset(uid types.UID, interval time.Duration, now time.Time) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	phase := int64(h.Sum64() % uint64(interval)) //nolint:gosec // G115: interval > 0, and the remainder is below it
	return time.Duration((phase - now.UnixNano()%int64(interval) + int64(interval)) % int64(interval))
}

// nextPhase is the wait from now until the task's moment of the interval (phaseOffset) that is at least half an
// interval away: a task polled on time is polled again one interval later, one polled late is back on its
// moment at once, and two polls are never closer than half an interval.
func nextPhase(uid types.UID, interval time.Duration, now time.Time) time.Duration {
	return interval/2 + phaseOffset(uid, interval, now.Add(interval/2))
}

// wait returns how long until the task is due; 0 when it is due or unknown.
func (s *scheduler) wait(task *v1alpha1.AsyncTask, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.lookup(taskKey(task), task.UID).due.Sub(now), 0)
}

// due reports whether the task is to be polled now: its time has come or its spec changed since the last
// poll, and it is not past its activeDeadlineSeconds.
func (s *scheduler) due(task *v1alpha1.AsyncTask, now time.Time) bool {
	if deadlineExceeded(task, now) {
		return false
	}
	return s.wait(task, now) == 0 || task.Status.ObservedGeneration != task.Generation
}

// maxRequestedAtLength is the longest tasks.asynctask.dev/requestedAt value honoured: status.lastHandledRequestedAt
// holds at most this much, and a value it cannot hold would be asked for again on every pass.
const maxRequestedAtLength = 256

// pollRequested returns the value of tasks.asynctask.dev/requestedAt when it asks for a poll now: it differs
// from status.lastHandledRequestedAt and the task is not past its activeDeadlineSeconds. A running task is then
// polled at once, whatever its interval or backoff; the backend's rate limit and worker shares still apply
// (see poll). "" when there is no such request.
func pollRequested(ctx context.Context, task *v1alpha1.AsyncTask, now time.Time) string {
	v := task.Annotations[v1alpha1.AnnotationRequestedAt]
	if v == "" || v == task.Status.LastHandledRequestedAt || deadlineExceeded(task, now) {
		return ""
	}
	if len(v) > maxRequestedAtLength {
		log.FromContext(ctx).Info("Ignoring a poll request whose requestedAt value is too long",
			"annotation", v1alpha1.AnnotationRequestedAt, "length", len(v), "max", maxRequestedAtLength)
		return ""
	}
	return v
}

// record takes what a poll of the task found and returns the wait until the task's next poll: the interval
// with jitter while the vendor answers; an exponential backoff while it does not, never shorter than the
// vendor's Retry-After, except for the one task per interval that probes a failing backend. consecutiveErrors
// is the task's count after this poll. recovered is true when this poll found its backend answering again, so
// that the caller wakes the backend's other tasks.
func (s *scheduler) record(task *v1alpha1.AsyncTask, polled pollResult, consecutiveErrors int32, now time.Time) (next time.Duration, recovered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	interval := polled.interval
	if err := polled.outcome.err; err == nil {
		next = s.jitter(interval)
		if s.onPhase {
			next = nextPhase(task.UID, interval, now)
		}
		recovered = s.succeeded(polled.backend, polled.connection)
	} else {
		var retryAfter time.Duration
		if e, ok := backend.AsError(err); ok {
			retryAfter = e.RetryAfter
		}
		next = s.backoff(interval, consecutiveErrors, retryAfter)
		if polled.connection != "" {
			probe := classify(err).backendFailing && s.failed(polled.backend, polled.connection, now, interval)
			// A failure answered while another task already found the backend back (the wake-up may have
			// come before this schedule is written) is not backed off either.
			if probe || !s.isFailing(polled.backend, polled.connection) {
				next = min(next, max(s.jitter(interval), retryAfter))
			}
		}
	}
	due, regular := now.Add(next), now.Add(next)
	if polled.outcome.err != nil {
		regular = now.Add(min(s.jitter(interval), next))
	}
	s.tasks[taskKey(task)] = taskSchedule{uid: task.UID, due: due, regular: regular}
	return next, recovered
}

// backoff is the wait after the n-th error in a row: the poll interval doubled per error, capped at
// maxBackoff, and never shorter than the vendor's Retry-After.
func (s *scheduler) backoff(interval time.Duration, consecutiveErrors int32, retryAfter time.Duration) time.Duration {
	wait := interval
	for i := int32(1); i < consecutiveErrors && wait < maxBackoff; i++ {
		wait *= 2
	}
	return max(min(s.jitter(wait), maxBackoff), min(retryAfter, maxBackoff))
}

// afterDeferred is the wait before a task whose poll was deferred (its backend's rate limit or worker share
// was used up) is asked again.
func (s *scheduler) afterDeferred(wait time.Duration) time.Duration { return s.jitter(wait) }

// wake brings a backed-off task forward to its regular time (its backend answers again), never earlier, and
// reports whether it moved the task: one that did not back off keeps its own time, and its own timer.
func (s *scheduler) wake(key types.NamespacedName, uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.tasks[key]
	if !ok || ts.uid != uid || !ts.regular.Before(ts.due) {
		return false
	}
	ts.due = ts.regular
	s.tasks[key] = ts
	return true
}

// pollNow makes a task this process has scheduled due at once (its backend or Secret changed) and reports
// whether it did, so that the caller queues it. A task not scheduled yet is left to its first reconcile, which
// places it: the events of a start's initial lists of backends, Secrets and namespaces would otherwise make
// every task due at once.
func (s *scheduler) pollNow(key types.NamespacedName, uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.tasks[key]
	if !ok || ts.uid != uid || ts.finished {
		return false
	}
	s.tasks[key] = taskSchedule{uid: uid}
	return true
}

// finish records that the task finished: it is never due again.
func (s *scheduler) finish(key types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[key] = taskSchedule{uid: uid, finished: true}
}

// isFinished reports whether this process saw the task finish.
func (s *scheduler) isFinished(key types.NamespacedName, uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.tasks[key]
	return ok && ts.uid == uid && ts.finished
}

// forget drops a task that is gone (uid ""), or whose finish the cache now shows.
func (s *scheduler) forget(key types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts, ok := s.tasks[key]; ok && (uid == "" || ts.uid == uid) {
		delete(s.tasks, key)
	}
	if hold, ok := s.holds[key]; ok && (uid == "" || hold.uid == uid) {
		delete(s.holds, key)
	}
}

// untilNextDeadline is the time until the task's activeDeadlineSeconds or progressDeadlineSeconds passes, so
// that a task is failed or marked stalled on time even between polls; an hour when it has neither ahead.
func untilNextDeadline(task *v1alpha1.AsyncTask, status *v1alpha1.AsyncTaskStatus, now time.Time) time.Duration {
	next := time.Hour
	if d := task.Spec.ActiveDeadlineSeconds; d != nil {
		next = min(next, task.CreationTimestamp.Add(time.Duration(*d)*time.Second).Sub(now))
	}
	if d := task.Spec.ProgressDeadlineSeconds; d != nil && status.LastProgressTime != nil && !progressDeadlineExceeded(task, status, now) {
		next = min(next, status.LastProgressTime.Add(time.Duration(*d)*time.Second).Sub(now))
	}
	return max(next, 100*time.Millisecond)
}
