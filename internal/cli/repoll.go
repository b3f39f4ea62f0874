package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// repollOptions are repoll's flags.
type repollOptions struct {
	all     bool
	timeout time.Duration
}

func newRepollCommand(o *Options) *cobra.Command {
	opts := &repollOptions{}
	cmd := &cobra.Command{
		Use:   "repoll (TASK... | --all [-A])",
		Short: "Ask the operator to poll tasks now, and print what it found",
		Long: `repoll asks for one poll of each task now, as flux reconcile does: it sets the annotation
tasks.asynctask.dev/requestedAt to the current time, waits until the operator has polled (the value is then
in status.lastHandledRequestedAt) and prints each task's new state. The poll skips the task's interval and
backoff, not the backend's rate limit. A finished task is never polled again, nor is a task whose job is not
started yet; repoll says so and leaves them alone.

Exit codes: 0 when every task was polled (or needs no poll), 2 when the operator did not poll within
--timeout, 3 when a task does not exist or cannot be read.`,
		Example: `  kubectl asynctask repoll import-orders
  kubectl asynctask repoll --all -n shop
  kubectl asynctask repoll --all -A --timeout 5m`,
		ValidArgsFunction: completeTaskNames(o, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.all && len(args) > 0:
				return errors.New("give task names or --all, not both")
			case !opts.all && len(args) == 0:
				return errors.New("give one or more task names, or --all")
			case o.AllNamespaces && !opts.all:
				return errors.New("-A goes with --all")
			}
			return repoll(cmd.Context(), o, opts, args)
		},
	}
	cmd.Flags().BoolVar(&opts.all, "all", false, "every unfinished task in the namespace")
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "with --all: every namespace")
	cmd.Flags().DurationVar(&opts.timeout, "timeout", time.Minute, "how long to wait for the operator's polls")
	return cmd
}

func repoll(ctx context.Context, o *Options, opts *repollOptions, names []string) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns, err := o.Namespace()
	if err != nil {
		return err
	}
	out := o.Streams.Out
	label := taskLabel(o.AllNamespaces)
	var tasks []*v1alpha1.AsyncTask
	if opts.all {
		if tasks, err = unfinishedTasks(ctx, c, ns, o.AllNamespaces); err != nil {
			return err
		}
		if len(tasks) == 0 {
			fmt.Fprintln(out, "No unfinished tasks.")
			return nil
		}
	}
	var tally repollTally
	for _, name := range names {
		task := &v1alpha1.AsyncTask{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, task); err != nil {
			fmt.Fprintf(out, "%s: %s\n", name, readProblem(err))
			tally.unreadable++
			continue
		}
		tasks = append(tasks, task)
	}

	// Every request first, then the waits: the operator polls the tasks side by side.
	value := time.Now().UTC().Format(time.RFC3339Nano)
	var asked []*v1alpha1.AsyncTask
	for _, task := range tasks {
		if why := notPolled(task); why != "" {
			fmt.Fprintf(out, "%s: %s, not polled\n", label(task), why)
			continue
		}
		if err := patchAnnotation(ctx, c, task, v1alpha1.AnnotationRequestedAt, value); err != nil {
			fmt.Fprintf(out, "%s: cannot ask for a poll: %v\n", label(task), err)
			tally.failed++
			continue
		}
		asked = append(asked, task)
	}

	waitCtx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	for _, task := range asked {
		got, err := watchTask(waitCtx, c, client.ObjectKeyFromObject(task), func(t *v1alpha1.AsyncTask) bool {
			return t.Status.LastHandledRequestedAt == value || t.IsFinished()
		})
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintf(out, "%s: not polled within %s\n", label(task), opts.timeout)
			tally.timedOut++
		case err != nil:
			fmt.Fprintf(out, "%s: %v\n", label(task), err)
			tally.failed++
		default:
			fmt.Fprintf(out, "%s: %s\n", label(task), stateLine(got))
		}
	}
	return tally.err(opts.timeout)
}

// repollTally counts the tasks repoll could not have polled, by why.
type repollTally struct{ unreadable, timedOut, failed int }

// err is the command's result: ExitNotFound when a task could not be read, else ExitTimeout when the operator
// did not poll in time, else ExitFailed for any other error. Each task's line is printed already.
func (t repollTally) err(timeout time.Duration) error {
	switch {
	case t.unreadable > 0:
		return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("%s not found or cannot be read", tasksWord(t.unreadable))}
	case t.timedOut > 0:
		return timeoutError(fmt.Sprintf("the operator did not poll %s", tasksWord(t.timedOut)), timeout)
	case t.failed > 0:
		return fmt.Errorf("%s not polled", tasksWord(t.failed))
	}
	return nil
}

// tasksWord is "1 task", "2 tasks", ...
func tasksWord(n int) string {
	if n == 1 {
		return "1 task"
	}
	return fmt.Sprintf("%d tasks", n)
}

// notPolled says why the operator will not poll the task, or "" when it will.
func notPolled(task *v1alpha1.AsyncTask) string {
	if task.IsFinished() {
		return fmt.Sprintf("finished (%s)", task.Status.Phase)
	}
	if task.Spec.Submit != nil && !task.SubmitAccepted() {
		reason := "not submitted yet"
		if c := task.SubmittedCondition(); c != nil {
			reason = c.Reason
		}
		return fmt.Sprintf("job not started (%s)", reason)
	}
	return ""
}

// unfinishedTasks lists the tasks of the namespace (or every namespace) that have not finished.
func unfinishedTasks(ctx context.Context, c client.Client, ns string, allNamespaces bool) ([]*v1alpha1.AsyncTask, error) {
	list := &v1alpha1.AsyncTaskList{}
	var opts []client.ListOption
	if !allNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, list, opts...); err != nil {
		return nil, err
	}
	var out []*v1alpha1.AsyncTask
	for i := range list.Items {
		if !list.Items[i].IsFinished() {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// taskLabel names a task in output lines: with its namespace when several namespaces are involved.
func taskLabel(allNamespaces bool) func(*v1alpha1.AsyncTask) string {
	return func(t *v1alpha1.AsyncTask) string {
		if allNamespaces {
			return t.Namespace + "/" + t.Name
		}
		return t.Name
	}
}
