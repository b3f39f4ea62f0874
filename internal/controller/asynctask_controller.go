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
	"k8s.io/utils/clock"
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
	"github.com/asynctask-operator/asynctask-operator/internal/submit"
)

// AsyncTaskReconciler polls each unfinished AsyncTask's vendor on its schedule and writes what it saw.
type AsyncTaskReconciler struct {
	client.Client
	// APIReader reads objects the manager does not cache (result ConfigMaps).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// FieldOwner names this operator in the tasks' managedFields.
	FieldOwner string

	clock     clock.PassiveClock
	connector *connector
	schedule  *scheduler
	tasksOf   *taskMapper
	// wake queues tasks woken by their backend's recovery, or by a free place in their operation's queue.
	wake chan event.GenericEvent
	// submitter runs the submission protocol of tasks with spec.submit; queue holds their operations' places.
	submitter *submit.Submitter
	queue     *submit.Queue
	// ring says which tasks this replica works on; gained queues those the ring gives it.
	ring   ownership
	gained handoverQueue
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
			r.schedule.forget(req.NamespacedName, "")
			r.forgetDeleted(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.clock.Now()
	owned := r.ownsTask(ctx, task)
	if !task.DeletionTimestamp.IsZero() || task.Status.Phase.Finished() {
		// A finished task is never polled again; it may only be due for deletion, by its owner. Every replica
		// frees its place in the queue: the backend's owner may start the next job.
		r.schedule.forget(req.NamespacedName, task.UID)
		if task.Spec.Submit != nil || !task.DeletionTimestamp.IsZero() {
			r.forgetSubmission(ctx, task)
		}
		if !owned {
			return ctrl.Result{}, nil
		}
		return r.deleteAfterTTL(ctx, task, now)
	}
	if !owned {
		r.schedule.forget(req.NamespacedName, task.UID)
		return ctrl.Result{}, nil
	}
	if r.schedule.isFinished(req.NamespacedName, task.UID) {
		// Finished here, but the cache has not seen that status yet: look again soon, for its TTL.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if task.Spec.Submit != nil && !tracking(task) {
		if wait := r.ring.settledAt().Sub(now); wait > 0 {
			// Its backend may have been gained by the ring's last change: the replica that had it may not know yet.
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		started, result, done, err := r.submitStep(ctx, task)
		if !done {
			return result, err
		}
		task = started
		if !r.ownsTask(ctx, task) {
			return ctrl.Result{}, nil // tracked now, by the replica the task's own UID belongs to
		}
	}

	r.schedule.place(task, func() time.Duration { return r.pollIntervalOf(ctx, task) }, now)
	requested := pollRequested(ctx, task, now)
	var polled *pollResult // nil when the task is not due: only its deadlines may change its status
	if requested != "" || r.schedule.due(task, now) {
		result := r.poll(ctx, task)
		if result.deferredFor > 0 {
			// Not asked: the backend's rate limit or its share of the workers is used up. Still due.
			return ctrl.Result{RequeueAfter: r.schedule.afterDeferred(result.deferredFor)}, nil
		}
		polled = &result
	}
	var outcome pollOutcome
	if polled != nil {
		outcome = polled.outcome
	}
	resultNote, err := r.writeResultConfigMap(ctx, task, outcome)
	if err != nil {
		return ctrl.Result{}, err
	}
	status := statusFromOutcome(task, outcome, resultNote, now)
	if polled != nil && requested != "" {
		status.LastHandledRequestedAt = requested
	}
	task, err = r.writeStatus(ctx, task, status)
	if err != nil {
		return ctrl.Result{}, err
	}
	next := r.schedule.wait(task, now)
	if polled != nil {
		var recovered bool
		next, recovered = r.schedule.record(task, *polled, status.ConsecutiveErrors, now)
		if recovered {
			r.wakeTasks(ctx, polled.backend)
		}
	}
	if status.Phase.Finished() {
		r.schedule.finish(req.NamespacedName, task.UID)
		if task.Spec.Submit != nil {
			r.forgetSubmission(ctx, task)
		}
		var labels backendLabels
		if polled != nil {
			labels = polled.labels
		} else { // failed by a deadline, not polled: the backend is read for its type only now
			labels = labelsFor(backendKeyOf(task), r.connector.typeOf(ctx, backendKeyOf(task)))
		}
		recordFinished(labels, task, outcome.observation, r.clock.Now())
		result, err := r.deleteAfterTTL(ctx, task, now)
		if err == nil && result.RequeueAfter == 0 {
			// Once more when the cache shows the final status, to drop the task from the schedule.
			result.RequeueAfter = time.Second
		}
		return result, err
	}
	return ctrl.Result{RequeueAfter: min(next, untilNextDeadline(task, &status, now))}, nil
}

// pollResult is what one poll of a task did.
type pollResult struct {
	outcome pollOutcome
	// deferredFor, when not zero, says that the vendor was not asked: the backend's rate limit or a share of
	// the workers was used up. The task is due again after it.
	deferredFor time.Duration
	interval    time.Duration
	backend     backendKey
	// labels name the backend on the metrics.
	labels backendLabels
	// connection identifies the vendor client the poll went through (see backendHealth); "" when the backend
	// could not be used.
	connection string
}

// poll asks the task's backend once.
func (r *AsyncTaskReconciler) poll(ctx context.Context, task *v1alpha1.AsyncTask) pollResult {
	key := backendKeyOf(task)
	result := pollResult{backend: key, interval: taskInterval(task, nil)}
	started := r.clock.Now()
	conn, err := r.connector.connectForPoll(ctx, key, task.Namespace)
	if err != nil {
		result.labels = labelsFor(key, r.connector.typeOf(ctx, key))
		recordPoll(result.labels, err, r.clock.Since(started))
		result.outcome.err = err
		return result
	}
	result.labels, result.connection = conn.labels, conn.fingerprint
	result.interval = taskInterval(task, &conn.spec)
	if !conn.tryAcquireWorker() {
		recordDeferred(conn.labels, deferredBackendWorkers)
		result.deferredFor = time.Second // all of this backend's workers are busy
		return result
	}
	defer conn.releaseWorker()
	if key.Kind == v1alpha1.BackendKindTaskBackend {
		if !r.connector.namespaceWorkers.tryAcquire(key.Namespace) {
			recordDeferred(conn.labels, deferredNamespaceWorkers)
			result.deferredFor = time.Second // all of this namespace's workers are busy
			return result
		}
		defer r.connector.namespaceWorkers.release(key.Namespace)
	}
	// Bound the whole poll, a login included, so a stuck vendor never holds a worker for long.
	pollCtx, cancel := context.WithTimeout(conn.withLoginMetrics(ctx), 3*durationOr(conn.spec.RequestTimeout, defaultRequestTimeout))
	defer cancel()
	obs, err := backend.PollTask(pollCtx, conn.backend, task.EffectiveTaskID(), task.Spec.Parameters)
	if wait, deferred := backend.DeferredFor(err); deferred {
		recordDeferred(conn.labels, deferredRateLimit)
		result.deferredFor = wait
		return result
	}
	recordPoll(conn.labels, err, r.clock.Since(started))
	if err != nil {
		result.outcome.err = err
		return result
	}
	if obs.UnknownStatus {
		log.FromContext(ctx).Info("Vendor reported an unknown status word; treating the task as running",
			"backend", key.String(), "vendorStatus", obs.VendorStatus)
	}
	result.outcome.observation = &obs
	return result
}

// taskInterval is a task's poll interval: its own, else its backend's (backendSpec, nil when the backend could
// not be read), else the default.
func taskInterval(task *v1alpha1.AsyncTask, backendSpec *v1alpha1.TaskBackendSpec) time.Duration {
	if task.Spec.PollInterval == nil && backendSpec != nil {
		return durationOr(backendSpec.PollInterval, defaultPollInterval)
	}
	return durationOr(task.Spec.PollInterval, defaultPollInterval)
}

// pollIntervalOf is taskInterval for a task not polled yet in this process: it reads the backend only when the
// task has no interval of its own.
func (r *AsyncTaskReconciler) pollIntervalOf(ctx context.Context, task *v1alpha1.AsyncTask) time.Duration {
	if task.Spec.PollInterval != nil {
		return taskInterval(task, nil)
	}
	spec, _, _, err := r.connector.getBackendSpec(ctx, backendKeyOf(task))
	if err != nil {
		return taskInterval(task, nil)
	}
	return taskInterval(task, &spec)
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

// writeStatus patches the status when it differs from what is stored, records an event when the phase or the
// reason the task waits changed, and returns the task with that status. task shares its maps, slices and
// pointers with the cache's object (read without a deep copy, see CacheOptions): it is never changed, and only
// copied when there is something to write.
func (r *AsyncTaskReconciler) writeStatus(ctx context.Context, task *v1alpha1.AsyncTask, status v1alpha1.AsyncTaskStatus) (*v1alpha1.AsyncTask, error) {
	if statusEquality.DeepEqual(task.Status, status) {
		unchanged := *task // a shallow copy: nothing writes into it
		unchanged.Status = status
		return &unchanged, nil
	}
	after := task.DeepCopy()
	after.Status = status
	changed, err := patchStatus(ctx, r.Client, r.FieldOwner, task, after, "AsyncTask")
	if err != nil {
		return nil, err
	}
	if changed {
		r.recordTransition(task, after)
	}
	return after, nil
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

// asyncTaskControllerName names the AsyncTask controller in metrics and logs.
const asyncTaskControllerName = "asynctask"

// unlessFinishedForGood drops the creation events (a start's initial list among them) of finished tasks without
// ttlSecondsAfterFinished: there is nothing to do for them, and a cluster may hold many. Their deletion still
// reaches the reconciler, which forgets their schedule.
var unlessFinishedForGood = predicate.Funcs{CreateFunc: func(e event.CreateEvent) bool {
	task, ok := e.Object.(*v1alpha1.AsyncTask)
	return !ok || !task.Status.Phase.Finished() || task.Spec.TTLSecondsAfterFinished != nil || !task.DeletionTimestamp.IsZero()
}}

// resolveAnnotationSet passes the update that sets or changes a person's resolution of a submission
// (tasks.asynctask.dev/resolve): annotations change no generation.
var resolveAnnotationSet = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	v := e.ObjectNew.GetAnnotations()[v1alpha1.AnnotationResolve]
	return v != "" && v != e.ObjectOld.GetAnnotations()[v1alpha1.AnnotationResolve]
}}

// requestedAtSet passes the update that sets or changes tasks.asynctask.dev/requestedAt: a request for a poll
// now (annotations change no generation).
var requestedAtSet = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	v := e.ObjectNew.GetAnnotations()[v1alpha1.AnnotationRequestedAt]
	return v != "" && v != e.ObjectOld.GetAnnotations()[v1alpha1.AnnotationRequestedAt]
}}

// submissionEnded passes the status update that starts tracking a submitted job or finishes a task with
// spec.submit: with a ring, the replica that started the job is not the one that tracks it, and a finished
// job frees a place in its operation's queue, which the backend's owner runs.
var submissionEnded = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	before, ok1 := e.ObjectOld.(*v1alpha1.AsyncTask)
	after, ok2 := e.ObjectNew.(*v1alpha1.AsyncTask)
	if !ok1 || !ok2 || after.Spec.Submit == nil {
		return false
	}
	return after.Status.Phase.Finished() && !before.Status.Phase.Finished() || tracking(after) && !tracking(before)
}}

// setupWithManager registers the reconciler. Tasks are reconciled when created or their spec changes (their
// own status writes do not trigger a poll), and when a backend or Secret they depend on changes.
func (r *AsyncTaskReconciler) setupWithManager(mgr ctrl.Manager, connector *connector, workers int) error {
	r.connector = connector
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	r.schedule = newScheduler()
	if r.ring.enabled() {
		r.schedule.onPhase, r.schedule.joinedHold = true, r.ring.joinedSettledAt
	}
	r.queue = submit.NewQueue()
	r.submitter = &submit.Submitter{Store: &taskStore{client: mgr.GetClient(), reader: mgr.GetAPIReader(), fieldOwner: r.FieldOwner},
		Clock: r.clock, SendTimeout: 3 * defaultRequestTimeout}
	r.tasksOf = &taskMapper{client: mgr.GetClient(), schedule: r.schedule, changed: connector.changed}
	tasksOf := r.tasksOf
	r.wake = make(chan event.GenericEvent, 1024)
	passes := []predicate.Predicate{predicate.GenerationChangedPredicate{}, resolveAnnotationSet, requestedAtSet}
	if r.ring.enabled() {
		passes = append(passes, submissionEnded)
	}
	return ctrl.NewControllerManagedBy(mgr).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		WatchesRawSource(r.gained.source()).
		For(&v1alpha1.AsyncTask{}, builder.WithPredicates(predicate.Or[client.Object](passes...), unlessFinishedForGood)).
		Watches(&v1alpha1.TaskBackend{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forBackend),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.ClusterTaskBackend{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forBackend),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{}), builder.OnlyMetadata).
		// A namespace's labels decide which ClusterTaskBackends its tasks may use (spec.allowedNamespaces).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forNamespace),
			builder.OnlyMetadata, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Named(asyncTaskControllerName).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, LogConstructor: taskLogConstructor(mgr.GetLogger())}).
		Complete(r)
}
