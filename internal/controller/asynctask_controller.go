// Package controller holds the reconcilers: AsyncTask (polls the vendor and writes status) and
// TaskBackend / ClusterTaskBackend (checks the endpoint and credentials).
package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// AsyncTaskReconciler polls each unfinished AsyncTask's vendor on its schedule and writes what it saw.
type AsyncTaskReconciler struct {
	client.Client
	// APIReader reads objects the manager does not cache (result ConfigMaps).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// FieldOwner names this operator in the tasks' managedFields.
	FieldOwner string

	connector *connector
	schedule  *pollSchedule
	tasksOf   *taskMapper
	// wake queues tasks woken by their backend's recovery.
	wake chan event.GenericEvent
}

// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=asynctasks,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=asynctasks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=taskbackends;clustertaskbackends,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile polls the task once when it is due, writes the status if it changed, and schedules the next poll.
func (r *AsyncTaskReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	task := &v1alpha1.AsyncTask{}
	if err := r.Get(ctx, req.NamespacedName, task); err != nil {
		if apierrors.IsNotFound(err) {
			r.schedule.drop(req.NamespacedName, "")
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.now()
	if !task.DeletionTimestamp.IsZero() || task.Status.Phase.Finished() {
		// A finished task is never polled again; it may only be due for deletion.
		r.schedule.drop(req.NamespacedName, task.UID)
		return r.deleteAfterTTL(ctx, task, now)
	}
	if r.schedule.isFinished(req.NamespacedName, task.UID) {
		// Finished here, but the cache has not seen that status yet: look again soon, for its TTL.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}

	polled := r.pollIfDue(ctx, task, now)
	if e, ok := backend.AsError(polled.outcome.err); ok && e.Kind == backend.KindDeferred {
		// Not asked: the backend's rate limit or its share of the workers is used up. Still due.
		return ctrl.Result{RequeueAfter: withJitter(max(e.RetryAfter, time.Second))}, nil
	}
	status := statusFromOutcome(task, polled.outcome, now)
	if err := r.writeResultConfigMap(ctx, task, polled.outcome, &status); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.writeStatus(ctx, task, status); err != nil {
		return ctrl.Result{}, err
	}
	if status.Phase.Finished() {
		r.schedule.finish(req.NamespacedName, task.UID)
		recordFinished(polled.backendType, task, now)
		return r.deleteAfterTTL(ctx, task, now)
	}
	next := r.schedule.wait(task.UID, now)
	if polled.done {
		next = r.schedulePoll(task, polled, status, now)
	}
	return ctrl.Result{RequeueAfter: min(next, untilNextDeadline(task, &status, now))}, nil
}

// schedulePoll decides when the task polls next and records it: after the interval while the vendor answers,
// with backoff while it does not, except for the one task per interval that probes a failing backend.
func (r *AsyncTaskReconciler) schedulePoll(task *v1alpha1.AsyncTask, polled pollResult, status v1alpha1.AsyncTaskStatus, now time.Time) time.Duration {
	next := nextPollAfter(polled.interval, status, polled.outcome)
	// A failure answered while another task already found the backend back (the wake-up may have come
	// before this schedule is written) is not backed off either.
	recovered := polled.health != nil && !polled.health.isFailing()
	if polled.probe || recovered {
		var retryAfter time.Duration
		if e, ok := backend.AsError(polled.outcome.err); ok {
			retryAfter = e.RetryAfter
		}
		next = min(next, max(withJitter(polled.interval), retryAfter))
	}
	r.schedule.set(task.UID, now.Add(next), now.Add(withJitter(polled.interval)))
	return next
}

// pollResult is what pollIfDue did.
type pollResult struct {
	outcome pollOutcome
	// done is false when the task was not due (an early reconcile, or a deadline check), so nothing was asked.
	done        bool
	interval    time.Duration
	backendType v1alpha1.BackendType
	// probe is true when this task probes its failing backend once per interval instead of backing off.
	probe bool
	// health is the backend's, nil when the backend could not be used.
	health *backendHealth
}

// pollIfDue polls the task when its time has come or its spec changed since the last poll; a task past its
// activeDeadlineSeconds is not polled again.
func (r *AsyncTaskReconciler) pollIfDue(ctx context.Context, task *v1alpha1.AsyncTask, now time.Time) pollResult {
	due := r.schedule.wait(task.UID, now) == 0 || task.Status.ObservedGeneration != task.Generation
	if !due || deadlineExceeded(task, now) {
		return pollResult{}
	}
	return r.poll(ctx, task)
}

// poll asks the task's backend once.
func (r *AsyncTaskReconciler) poll(ctx context.Context, task *v1alpha1.AsyncTask) pollResult {
	result := pollResult{done: true, interval: durationOr(task.Spec.PollInterval, defaultPollInterval)}
	started := time.Now()
	conn, err := r.connector.connect(ctx, backendKeyOf(task), task.Namespace)
	if err != nil {
		recordPoll("", err, time.Since(started))
		result.outcome.err = err
		return result
	}
	result.backendType = conn.spec.Type
	if task.Spec.PollInterval == nil {
		result.interval = conn.pollInterval()
	}
	if !conn.tryAcquireWorker() {
		result.outcome.err = &backend.Error{Kind: backend.KindDeferred, RetryAfter: time.Second, Message: "all of this backend's workers are busy"}
		return result
	}
	defer conn.releaseWorker()
	if key := backendKeyOf(task); key.Kind == v1alpha1.BackendKindTaskBackend {
		if !r.connector.namespaceWorkers.tryAcquire(key.Namespace) {
			result.outcome.err = &backend.Error{Kind: backend.KindDeferred, RetryAfter: time.Second, Message: "all of this namespace's workers are busy"}
			return result
		}
		defer r.connector.namespaceWorkers.release(key.Namespace)
	}
	// Bound the whole poll, a login included, so a stuck vendor never holds a worker for long.
	pollCtx, cancel := context.WithTimeout(ctx, 3*durationOr(conn.spec.RequestTimeout, defaultRequestTimeout))
	defer cancel()
	obs, err := backend.PollTask(pollCtx, conn.backend, task.Spec.TaskID, task.Spec.Parameters)
	if backend.KindOf(err) == backend.KindDeferred {
		result.outcome.err = err
		return result
	}
	recordPoll(conn.spec.Type, err, time.Since(started))
	if err != nil {
		result.outcome.err = err
		result.probe = backend.KindOf(err) == backend.KindTransient && conn.health.failed(started, result.interval)
		result.health = &conn.health
		return result
	}
	if conn.health.succeeded() {
		r.wakeTasks(ctx, backendKeyOf(task))
	}
	if obs.UnknownStatus {
		log.FromContext(ctx).Info("Vendor reported an unknown status word; treating the task as running",
			"backend", backendKeyOf(task).String(), "vendorStatus", obs.VendorStatus)
	}
	result.outcome.observation = &obs
	return result
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

// deleteAfterTTL deletes a finished task ttlSecondsAfterFinished after its completion, like a Job.
func (r *AsyncTaskReconciler) deleteAfterTTL(ctx context.Context, task *v1alpha1.AsyncTask, now time.Time) (ctrl.Result, error) {
	ttl := task.Spec.TTLSecondsAfterFinished
	if ttl == nil || task.Status.CompletionTime == nil || !task.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	deleteAt := task.Status.CompletionTime.Add(time.Duration(*ttl) * time.Second)
	if wait := deleteAt.Sub(now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	log.FromContext(ctx).Info("Deleting finished task after ttlSecondsAfterFinished", "ttlSeconds", *ttl)
	err := r.Delete(ctx, task, client.Preconditions{UID: &task.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	return ctrl.Result{}, client.IgnoreNotFound(err)
}

// nextPollAfter is the wait before the next poll: the interval with jitter while the vendor answers, an
// exponential backoff while it does not.
func nextPollAfter(interval time.Duration, status v1alpha1.AsyncTaskStatus, outcome pollOutcome) time.Duration {
	if outcome.err == nil {
		return withJitter(interval)
	}
	var retryAfter time.Duration
	if e, ok := backend.AsError(outcome.err); ok {
		retryAfter = e.RetryAfter
	}
	return backoff(interval, status.ConsecutiveErrors, retryAfter)
}

// writeStatus patches the status when it differs from what is stored, and records an event when the phase
// or the reason the task waits changed.
func (r *AsyncTaskReconciler) writeStatus(ctx context.Context, task *v1alpha1.AsyncTask, status v1alpha1.AsyncTaskStatus) error {
	if statusEquality.DeepEqual(task.Status, status) {
		return nil
	}
	before := task.DeepCopy()
	task.Status = status
	if err := r.Status().Patch(ctx, task, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}),
		client.FieldOwner(r.FieldOwner)); err != nil {
		return err
	}
	r.recordTransition(before, task)
	return nil
}

func (r *AsyncTaskReconciler) recordTransition(before, after *v1alpha1.AsyncTask) {
	if r.Recorder == nil {
		return
	}
	oldReason, newReason := readyReasonOf(before.Status.Conditions), readyReasonOf(after.Status.Conditions)
	if before.Status.Phase == after.Status.Phase && oldReason == newReason {
		return
	}
	eventType := corev1.EventTypeNormal
	if after.Status.Phase == v1alpha1.TaskPhaseFailed || isBackendErrorReason(newReason) {
		eventType = corev1.EventTypeWarning
	}
	// An event's note is limited to 1 KiB; the message is bounded in characters, so cut it to bytes too.
	r.Recorder.Eventf(after, nil, eventType, newReason, "Poll", "%s", backend.TruncateBytes(after.Status.Message, 1024))
}

// readyReasonOf returns the reason of the Ready condition, or "".
func readyReasonOf(conditions []metav1.Condition) string {
	if c := meta.FindStatusCondition(conditions, v1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

func isBackendErrorReason(reason string) bool {
	switch reason {
	case v1alpha1.ReasonBackendUnavailable, v1alpha1.ReasonAuthenticationFailed, v1alpha1.ReasonBackendNotFound:
		return true
	}
	return false
}

func (r *AsyncTaskReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler. Tasks are reconciled when created or their spec changes (their
// own status writes do not trigger a poll), and when a backend or Secret they depend on changes.
func (r *AsyncTaskReconciler) SetupWithManager(mgr ctrl.Manager, connector *connector, workers int) error {
	r.connector = connector
	r.schedule = newPollSchedule()
	r.tasksOf = &taskMapper{client: mgr.GetClient(), schedule: r.schedule}
	tasksOf := r.tasksOf
	r.wake = make(chan event.GenericEvent, 1024)
	return ctrl.NewControllerManagedBy(mgr).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		For(&v1alpha1.AsyncTask{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.TaskBackend{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forBackend),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.ClusterTaskBackend{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forBackend),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{}), builder.OnlyMetadata).
		// A namespace's labels decide which ClusterTaskBackends its tasks may use (spec.allowedNamespaces).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forNamespace),
			builder.OnlyMetadata, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Named("asynctask").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}
