// Command waiter is an example of another controller that waits on AsyncTasks: it watches the tasks that
// carry the label example.asynctask.dev/wait=true and, once a task is Finished, writes its outcome to a
// ConfigMap named after the task, owned by it. docs/consumers.md walks through it. It imports only the
// asynctask API module and controller-runtime.
package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

const (
	// WaitLabel marks the tasks the waiter watches, with the value "true".
	WaitLabel = "example.asynctask.dev/wait"
	// OutcomeSuffix names a task's outcome ConfigMap: <task name><OutcomeSuffix>.
	OutcomeSuffix = "-outcome"

	// The outcome ConfigMap's keys.
	keyOutcome        = "outcome" // Succeeded or Failed
	keyReason         = "reason"  // the Finished condition's reason: Succeeded, TaskFailed, DeadlineExceeded, ...
	keyMessage        = "message"
	keyCompletionTime = "completionTime"
)

// TaskWaiter writes a ConfigMap with the outcome of each labelled AsyncTask once it is Finished.
type TaskWaiter struct {
	Client client.Client
}

// SetupWithManager watches the labelled AsyncTasks. A status write is what makes a task Finished, so the
// watch takes every update, not only spec changes.
func (w *TaskWaiter) SetupWithManager(mgr ctrl.Manager) error {
	labelled, err := predicate.LabelSelectorPredicate(metav1.LabelSelector{MatchLabels: map[string]string{WaitLabel: "true"}})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("taskwaiter").
		For(&v1alpha1.AsyncTask{}, builder.WithPredicates(labelled)).
		Complete(w)
}

// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=asynctasks,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;update

// Reconcile writes the outcome of a finished, labelled task; a task still running is left until its next
// status write brings it back.
func (w *TaskWaiter) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var task v1alpha1.AsyncTask
	if err := w.Client.Get(ctx, req.NamespacedName, &task); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The predicate filters events; the label is checked again because Reconcile may also run for a task
	// that has just lost it.
	if task.Labels[WaitLabel] != "true" || !task.IsFinished() {
		return ctrl.Result{}, nil
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: task.Namespace, Name: task.Name + OutcomeSuffix}}
	op, err := controllerutil.CreateOrUpdate(ctx, w.Client, cm, func() error {
		cm.Data = outcomeOf(&task)
		return controllerutil.SetControllerReference(&task, cm, w.Client.Scheme())
	})
	if err != nil { // a conflict too: the retry reads the ConfigMap again
		return ctrl.Result{}, fmt.Errorf("writing the outcome of %s: %w", req.NamespacedName, err)
	}
	if op != controllerutil.OperationResultNone {
		ctrl.LoggerFrom(ctx).Info("Task finished", "outcome", cm.Data[keyOutcome], "configMap", cm.Name)
	}
	return ctrl.Result{}, nil
}

// outcomeOf is what the ConfigMap says about a finished task.
func outcomeOf(task *v1alpha1.AsyncTask) map[string]string {
	data := map[string]string{keyOutcome: string(v1alpha1.TaskPhaseFailed)}
	if task.Succeeded() {
		data[keyOutcome] = string(v1alpha1.TaskPhaseSucceeded)
	}
	if c := task.FinishedCondition(); c != nil {
		data[keyReason], data[keyMessage] = c.Reason, c.Message
	}
	if t := task.Status.CompletionTime; t != nil {
		data[keyCompletionTime] = t.UTC().Format("2006-01-02T15:04:05Z")
	}
	return data
}
