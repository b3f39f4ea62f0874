// Package controller holds the reconcilers: AsyncTask (polls the vendor and writes status) and
// TaskBackend / ClusterTaskBackend (checks the endpoint and credentials).
package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// AsyncTaskReconciler polls each unfinished AsyncTask's vendor on its schedule and writes what it saw.
type AsyncTaskReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	connector *connector
	schedule  *pollSchedule
}

// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=asynctasks,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=asynctasks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=taskbackends;clustertaskbackends,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile polls the task once when it is due, writes the status if it changed, and schedules the next poll.
func (r *AsyncTaskReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	task := &v1alpha1.AsyncTask{}
	if err := r.Get(ctx, req.NamespacedName, task); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !task.DeletionTimestamp.IsZero() || task.Status.Phase.Finished() {
		// A finished task is never polled again.
		r.schedule.forget(task.UID)
		return ctrl.Result{}, nil
	}
	now := r.now()
	if wait := r.schedule.wait(task.UID, now); wait > 0 && task.Status.ObservedGeneration == task.Generation {
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	outcome, interval := r.poll(ctx, task)
	status := statusFromOutcome(task, outcome, now)
	if err := r.writeStatus(ctx, task, status); err != nil {
		return ctrl.Result{}, err
	}
	if status.Phase.Finished() {
		r.schedule.forget(task.UID)
		return ctrl.Result{}, nil
	}
	next := nextPollAfter(interval, status, outcome)
	r.schedule.set(task.UID, now.Add(next))
	return ctrl.Result{RequeueAfter: next}, nil
}

// poll asks the task's backend once. It returns what was learned and the task's poll interval.
func (r *AsyncTaskReconciler) poll(ctx context.Context, task *v1alpha1.AsyncTask) (pollOutcome, time.Duration) {
	interval := durationOr(task.Spec.PollInterval, defaultPollInterval)
	conn, err := r.connector.connect(ctx, backendKeyOf(task))
	if err != nil {
		return pollOutcome{err: err}, interval
	}
	if task.Spec.PollInterval == nil {
		interval = conn.pollInterval()
	}
	// Bound the whole poll, a login included, so a stuck vendor never holds a worker for long.
	ctx, cancel := context.WithTimeout(ctx, 3*durationOr(conn.spec.RequestTimeout, defaultRequestTimeout))
	defer cancel()
	obs, err := conn.backend.Poll(ctx, task.Spec.TaskID)
	if err != nil {
		return pollOutcome{err: err}, interval
	}
	if obs.UnknownStatus {
		log.FromContext(ctx).Info("Vendor reported an unknown status word; treating the task as running",
			"backend", backendKeyOf(task).String(), "vendorStatus", obs.VendorStatus)
	}
	return pollOutcome{observation: &obs}, interval
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
	if err := r.Status().Patch(ctx, task, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	r.recordTransition(before, task)
	return nil
}

func (r *AsyncTaskReconciler) recordTransition(before, after *v1alpha1.AsyncTask) {
	if r.Recorder == nil {
		return
	}
	oldReason, newReason := readyReason(before), readyReason(after)
	if before.Status.Phase == after.Status.Phase && oldReason == newReason {
		return
	}
	eventType := corev1.EventTypeNormal
	if after.Status.Phase == v1alpha1.TaskPhaseFailed || isBackendErrorReason(newReason) {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(after, nil, eventType, newReason, "Poll", "%s", after.Status.Message)
}

func readyReason(task *v1alpha1.AsyncTask) string {
	for _, c := range task.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c.Reason
		}
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
func (r *AsyncTaskReconciler) SetupWithManager(mgr ctrl.Manager, connector *connector) error {
	r.connector = connector
	r.schedule = newPollSchedule()
	tasksOf := &taskMapper{client: mgr.GetClient(), schedule: r.schedule}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.AsyncTask{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.TaskBackend{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forBackend),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.ClusterTaskBackend{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forBackend),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(tasksOf.forSecret),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Named("asynctask").
		Complete(r)
}
