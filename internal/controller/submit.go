package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/operation"
	"github.com/asynctask-operator/asynctask-operator/internal/submit"
)

// The sizes of a submission's body: spec.submit.body as the API server stores it, and bodyFrom's key.
const (
	maxSubmitBody     = 256 << 10
	maxSubmitBodyFrom = 1 << 20
)

// tracking reports whether a task with spec.submit needs nothing of the submission protocol this pass: its
// job's ID is in both records and no person's resolution waits. It reads the cached task, so that a tracked
// task costs no extra read.
func tracking(task *v1alpha1.AsyncTask) bool {
	r := submit.ReadRecords(task)
	return r.TaskIDInStatus && r.TaskIDInMetadata && r.Resolve == ""
}

// submitStep runs the submission protocol for a task with spec.submit whose job is not tracked yet. It returns
// the task to poll when the job's ID is recorded (done), or else the result of the pass.
func (r *AsyncTaskReconciler) submitStep(ctx context.Context, cached *v1alpha1.AsyncTask) (*v1alpha1.AsyncTask, ctrl.Result, bool, error) {
	// The protocol decides on the object as the API server holds it, never on the cache: every record it
	// writes is conditional on that object's resourceVersion.
	task := &v1alpha1.AsyncTask{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), task); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetSubmission(ctx, cached)
		}
		return nil, ctrl.Result{}, false, client.IgnoreNotFound(err)
	}
	if task.Status.Phase.Finished() || !task.DeletionTimestamp.IsZero() {
		return nil, ctrl.Result{RequeueAfter: time.Second}, false, nil // the cache will show it
	}
	key := backendKeyOf(task)
	interval := taskInterval(task, nil)
	conn, err := r.connector.connectForPoll(ctx, key, task.Namespace)
	if err != nil {
		return r.submitWaits(ctx, task, v1alpha1.ReasonSubmitting, "Cannot start the job yet: "+errorMessage(err), interval)
	}
	interval = taskInterval(task, &conn.spec)
	op, ok := conn.operations[task.Spec.Submit.Operation]
	sender, canSend := conn.backend.(backend.Sender)
	if !ok || !canSend {
		return r.submitWaits(ctx, task, v1alpha1.ReasonOperationNotFound, fmt.Sprintf(
			"%s has no operation %q in spec.operations; nothing is sent until it has", key, task.Spec.Submit.Operation), interval)
	}
	release, deferred := r.acquireWorkers(conn, key)
	if deferred > 0 {
		return nil, ctrl.Result{RequeueAfter: deferred}, false, nil
	}
	defer release()
	vendor := &taskVendor{r: r, op: op, sender: sender, poller: conn.backend}
	recovery := submit.RecoverByPerson
	switch {
	case conn.spec.Type == v1alpha1.BackendTypeZStack:
		recovery = submit.RecoverByProbe
	case op.IdempotencyKeyHeader != "":
		recovery = submit.RecoverByKey
	}
	pass := submit.Pass{Task: task, Vendor: vendor, Recovery: recovery, Keyed: op.IdempotencyKeyHeader != "", Interval: interval,
		SendTimeout:   3 * durationOr(conn.spec.RequestTimeout, defaultRequestTimeout),
		QueuedMessage: fmt.Sprintf("Waiting for a place: operation %s of %s runs at most %d jobs at once", op.Name, key, op.MaxRunning)}
	if op.MaxRunning > 0 {
		queueKey := submit.QueueKey{Backend: key.String(), Operation: op.Name}
		pass.Admit = func(record func() error) (bool, error) {
			tasks, err := r.unfinishedTasksOf(ctx, key)
			if err != nil {
				return false, err // the queue cannot be counted: nothing is started
			}
			return r.queue.Admit(queueKey, task, op.MaxRunning, tasks, record)
		}
	}
	res, err := r.submitter.Run(ctx, pass)
	for _, outcome := range res.Submissions {
		recordSubmission(conn.labels, submissionOutcome(outcome))
	}
	for _, e := range res.Events {
		eventType := corev1.EventTypeNormal
		if e.Warning {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(res.Task, nil, eventType, e.Reason, "Submit", "%s", backend.TruncateBytes(e.Message, 1024))
	}
	if err != nil {
		log.FromContext(ctx).Info("Submission not recorded; nothing was sent", "reason", err.Error())
		return nil, ctrl.Result{}, false, err
	}
	if res.TaskID != "" {
		return res.Task, ctrl.Result{}, true, nil
	}
	if res.Task.Status.Phase.Finished() {
		r.forgetSubmission(ctx, res.Task)
		recordFinished(conn.labels, res.Task, nil, r.clock.Now())
		return nil, ctrl.Result{}, false, nil
	}
	return nil, ctrl.Result{RequeueAfter: res.RetryAfter}, false, nil
}

// submitWaits shows a task that cannot be sent yet, and asks again after the interval.
func (r *AsyncTaskReconciler) submitWaits(ctx context.Context, task *v1alpha1.AsyncTask, reason, msg string, interval time.Duration) (*v1alpha1.AsyncTask, ctrl.Result, bool, error) {
	if _, err := r.submitter.Waits(ctx, task, reason, msg); err != nil {
		return nil, ctrl.Result{}, false, err
	}
	return nil, ctrl.Result{RequeueAfter: interval}, false, nil
}

// acquireWorkers takes a worker slot of the backend and, for a TaskBackend, of its namespace. It returns how
// long to wait instead when none is free.
func (r *AsyncTaskReconciler) acquireWorkers(conn *connection, key backendKey) (release func(), deferred time.Duration) {
	if !conn.tryAcquireWorker() {
		recordDeferred(conn.labels, deferredBackendWorkers)
		return nil, time.Second
	}
	if key.Kind == v1alpha1.BackendKindTaskBackend {
		if !r.connector.namespaceWorkers.tryAcquire(key.Namespace) {
			conn.releaseWorker()
			recordDeferred(conn.labels, deferredNamespaceWorkers)
			return nil, time.Second
		}
		return func() { r.connector.namespaceWorkers.release(key.Namespace); conn.releaseWorker() }, 0
	}
	return conn.releaseWorker, 0
}

// unfinishedTasksOf lists the unfinished tasks of a backend from the cache, for the queue.
func (r *AsyncTaskReconciler) unfinishedTasksOf(ctx context.Context, key backendKey) ([]*v1alpha1.AsyncTask, error) {
	tasks := &v1alpha1.AsyncTaskList{}
	opts := []client.ListOption{client.MatchingFields{taskBackendIndex: key.String()}}
	if key.Namespace != "" {
		opts = append(opts, client.InNamespace(key.Namespace))
	}
	if err := r.List(ctx, tasks, opts...); err != nil {
		return nil, fmt.Errorf("listing the tasks of %s for its queue: %w", key, err)
	}
	out := make([]*v1alpha1.AsyncTask, len(tasks.Items))
	for i := range tasks.Items {
		out[i] = &tasks.Items[i]
	}
	return out, nil
}

// forgetSubmission frees a finished or deleted task's place in its operation's queue and wakes the tasks
// waiting there.
func (r *AsyncTaskReconciler) forgetSubmission(ctx context.Context, task *v1alpha1.AsyncTask) {
	freed := r.queue.Forget(task.UID, client.ObjectKeyFromObject(task))
	if task.Spec.Submit != nil {
		freed = append(freed, submit.QueueKey{Backend: backendKeyOf(task).String(), Operation: task.Spec.Submit.Operation})
	}
	r.wakeWaiting(ctx, backendKeyOf(task), freed)
}

// forgetDeleted frees the place of a task that is gone, known by its name only. The tasks waiting in its
// queue see the place free when they next look, within their poll interval.
func (r *AsyncTaskReconciler) forgetDeleted(name types.NamespacedName) {
	r.queue.Forget("", name)
}

// wakeWaiting queues the tasks waiting in the queues of a backend, without blocking the caller.
func (r *AsyncTaskReconciler) wakeWaiting(ctx context.Context, key backendKey, queues []submit.QueueKey) {
	if len(queues) == 0 {
		return
	}
	tasks, err := r.unfinishedTasksOf(ctx, key)
	if err != nil {
		log.FromContext(ctx).Error(err, "Cannot wake the tasks waiting in a queue")
		return
	}
	var waiting []*v1alpha1.AsyncTask
	for _, q := range queues {
		if q.Backend == key.String() {
			waiting = append(waiting, submit.Waiting(q, tasks)...)
		}
	}
	go func() {
		for _, t := range waiting {
			woken := &v1alpha1.AsyncTask{}
			woken.Namespace, woken.Name = t.Namespace, t.Name
			select {
			case r.wake <- event.GenericEvent{Object: woken}:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// taskVendor is the submission protocol's view of a task's backend and operation.
type taskVendor struct {
	r      *AsyncTaskReconciler
	op     *operation.Operation
	sender backend.Sender
	poller backend.Backend
}

func (v *taskVendor) Request(ctx context.Context, task *v1alpha1.AsyncTask, key string) (backend.StartRequest, error) {
	body, err := v.r.submitBody(ctx, task)
	if err != nil {
		return backend.StartRequest{}, err
	}
	return v.op.Request(ctx, operation.Task{Body: body, Parameters: task.Spec.Submit.Parameters,
		Namespace: task.Namespace, Name: task.Name, UID: string(task.UID)}, key)
}

func (v *taskVendor) Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error) {
	return v.sender.Send(ctx, req)
}

func (v *taskVendor) Answer(ctx context.Context, resp *backend.Response, key string) (bool, string, error) {
	a, err := v.op.Answer(ctx, resp, key)
	return a.Accepted, a.TaskID, err
}

// JobExists asks for a job by polling it: any answer about it means it exists, "no such task" that it does
// not (ZStack answers 404 for a job it never had or has purged).
func (v *taskVendor) JobExists(ctx context.Context, id string) (bool, error) {
	_, err := backend.PollTask(ctx, v.poller, id, nil)
	switch backend.KindOf(err) {
	case backend.KindNotFound:
		return false, nil
	case backend.KindTransient, backend.KindAuthentication, backend.KindDeferred, backend.KindInvalidConfig,
		backend.KindUnreachable, backend.KindBackendNotFound, backend.KindSecretNotFound, backend.KindNotAllowed:
		if err != nil {
			return false, err
		}
	}
	return true, nil // answered about the job, or failed it: either way the vendor has it
}

// submitBody reads the task's body: spec.submit.body, or the key bodyFrom names, read once per attempt. JSON
// becomes a value, anything else a string.
func (r *AsyncTaskReconciler) submitBody(ctx context.Context, task *v1alpha1.AsyncTask) (any, error) {
	s := task.Spec.Submit
	var raw []byte
	switch {
	case s.Body != nil:
		if len(s.Body.Raw) > maxSubmitBody {
			return nil, backend.Errorf(backend.KindTerminal, "spec.submit.body is %d KiB, more than the %d KiB allowed (use bodyFrom for up to 1 MiB)", len(s.Body.Raw)>>10, maxSubmitBody>>10)
		}
		raw = s.Body.Raw
	case s.BodyFrom != nil && s.BodyFrom.ConfigMapKeyRef != nil:
		ref := s.BodyFrom.ConfigMapKeyRef
		cm := &corev1.ConfigMap{}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: task.Namespace, Name: ref.Name}, cm); err != nil {
			return nil, backend.Errorf(backend.KindTransient, "cannot read spec.submit.bodyFrom.configMapKeyRef: ConfigMap %s: %v", ref.Name, apiErrorReason(err))
		}
		value, ok := cm.Data[ref.Key]
		if !ok {
			if b, isBinary := cm.BinaryData[ref.Key]; isBinary {
				raw = b
			} else {
				return nil, backend.Errorf(backend.KindTransient, "spec.submit.bodyFrom.configMapKeyRef: ConfigMap %s has no key %q", ref.Name, ref.Key)
			}
		} else {
			raw = []byte(value)
		}
	case s.BodyFrom != nil && s.BodyFrom.SecretKeyRef != nil:
		ref := s.BodyFrom.SecretKeyRef
		secret, err := r.connector.secrets.Get(ctx, task.Namespace, ref.Name)
		if err != nil {
			return nil, backend.Errorf(backend.KindTransient, "cannot read spec.submit.bodyFrom.secretKeyRef: Secret %s: %v", ref.Name, apiErrorReason(err))
		}
		b, ok := secret.Data[ref.Key]
		if !ok {
			return nil, backend.Errorf(backend.KindTransient, "spec.submit.bodyFrom.secretKeyRef: Secret %s has no key %q", ref.Name, ref.Key)
		}
		raw = b
	default:
		return nil, nil
	}
	if len(raw) > maxSubmitBodyFrom {
		return nil, backend.Errorf(backend.KindTerminal, "spec.submit.bodyFrom names %d KiB, more than the %d KiB allowed", len(raw)>>10, maxSubmitBodyFrom>>10)
	}
	var v any
	if json.Valid(raw) && json.Unmarshal(raw, &v) == nil {
		return v, nil
	}
	return string(raw), nil
}

// apiErrorReason names an API read failure without quoting the object.
func apiErrorReason(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	return err.Error()
}
