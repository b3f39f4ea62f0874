package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
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

// watchTask waits until done holds for the task, and returns the task as it then is. It lists the task and
// follows it with followTasks, the watch get -w and wait use (opened again when it ends, the task listed again
// when its version expired). ctx bounds the wait.
func watchTask(ctx context.Context, c client.WithWatch, key client.ObjectKey, done func(*v1alpha1.AsyncTask) bool) (*v1alpha1.AsyncTask, error) {
	q := taskQuery{namespace: key.Namespace, names: []string{key.Name}}
	tasks, missing, resourceVersion, err := listTasks(ctx, c, q)
	switch {
	case err != nil:
		return nil, err
	case len(missing) > 0:
		return nil, errTaskDeleted
	case done(&tasks[0]):
		return &tasks[0], nil
	}
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	var got *v1alpha1.AsyncTask
	deleted := false
	err = followTasks(watchCtx, c, q, resourceVersion, []string{taskKey(&tasks[0])}, func(ev taskEvent) {
		switch {
		case got != nil || deleted: // stopping; an event already read may still come
		case ev.deleted:
			deleted = true
			stop()
		case done(ev.task):
			got = ev.task
			stop()
		}
	})
	switch {
	case got != nil:
		return got, nil
	case deleted:
		return nil, errTaskDeleted
	}
	return nil, err
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
		line += ": " + oneLine(task.Status.Message) // vendor text: no control characters reach the terminal
	}
	return line
}
