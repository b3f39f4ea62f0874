package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// What trace, repoll and resolve share: reading a task, and asking the operator for something with an
// annotation, then waiting until it has acted.

// readTask reads one task. A task that does not exist or cannot be read ends the command with ExitNotFound.
func readTask(ctx context.Context, c client.Client, key client.ObjectKey) (*v1alpha1.AsyncTask, error) {
	task := &v1alpha1.AsyncTask{}
	if err := c.Get(ctx, key, task); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil, &ExitError{Code: ExitNotFound, Err: fmt.Errorf("asynctask %s in namespace %s: %s", key.Name, key.Namespace, readProblem(err))}
		}
		return nil, err
	}
	return task, nil
}

// readProblem says in a few words why an object could not be read: "not found", "cannot read (forbidden)",
// or the error.
func readProblem(err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return "not found"
	case apierrors.IsForbidden(err):
		return "cannot read (forbidden)"
	}
	return err.Error()
}

// patchAnnotation sets one annotation of the task with a JSON merge patch: it touches nothing else, so it
// never conflicts with the operator's writes.
func patchAnnotation(ctx context.Context, c client.Client, task *v1alpha1.AsyncTask, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	return c.Patch(ctx, task, client.RawPatch(types.MergePatchType, patch))
}

// errTaskDeleted is what watchTask returns when the task is deleted while it waits.
var errTaskDeleted = errors.New("the task was deleted")

// watchTask waits, from a watch, until done holds for the task, and returns the task as it then is. It reads
// the task first and again whenever the watch ends, so no change is missed. ctx bounds the wait.
func watchTask(ctx context.Context, c client.WithWatch, key client.ObjectKey, done func(*v1alpha1.AsyncTask) bool) (*v1alpha1.AsyncTask, error) {
	for {
		task := &v1alpha1.AsyncTask{}
		if err := c.Get(ctx, key, task); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, errTaskDeleted
			}
			return nil, err
		}
		if done(task) {
			return task, nil
		}
		w, err := c.Watch(ctx, &v1alpha1.AsyncTaskList{}, client.InNamespace(key.Namespace),
			client.MatchingFields{"metadata.name": key.Name},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: task.ResourceVersion}})
		if err != nil {
			return nil, err
		}
		got, err := untilDone(ctx, w, done)
		w.Stop()
		if got != nil || err != nil {
			return got, err
		}
		// The watch ended (a server timeout or an expired resourceVersion): read the task again and go on.
	}
}

// untilDone reads the watch until done holds (the task), the task is deleted, ctx ends, or the watch ends
// (nil, nil).
func untilDone(ctx context.Context, w watch.Interface, done func(*v1alpha1.AsyncTask) bool) (*v1alpha1.AsyncTask, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return nil, errTaskDeleted
			case watch.Added, watch.Modified:
				if task, ok := ev.Object.(*v1alpha1.AsyncTask); ok && done(task) {
					return task, nil
				}
			case watch.Error:
				return nil, nil
			}
		}
	}
}

// isFinished reports whether the task has ended: its Finished condition, or its phase for a status written
// without conditions.
func isFinished(task *v1alpha1.AsyncTask) bool {
	return task.IsFinished() || task.Status.Phase.Finished()
}

// timeoutError is the ExitTimeout a command returns when the operator did not act within its --timeout.
func timeoutError(what string, timeout time.Duration) error {
	return &ExitError{Code: ExitTimeout, Err: fmt.Errorf("%s within %s: is the operator running? (kubectl asynctask version shows it)", what, timeout)}
}

// stateLine is a task's state in one line: phase, progress where the vendor reports one, and message.
func stateLine(task *v1alpha1.AsyncTask) string {
	phase := string(task.Status.Phase)
	if phase == "" {
		phase = "not polled yet"
	}
	line := phase
	if task.Status.Progress != nil {
		line += fmt.Sprintf(" %d%%", *task.Status.Progress)
	}
	if task.Status.Message != "" {
		line += ": " + task.Status.Message
	}
	return line
}
