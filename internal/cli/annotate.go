package cli

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
