package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// resolveOptions are resolve's flags: exactly one of adopt, resubmit and abandon.
type resolveOptions struct {
	adopt             string
	resubmit, abandon bool
	timeout           time.Duration
}

// answer is the value of tasks.asynctask.dev/resolve the flags ask for.
func (r *resolveOptions) answer() string {
	switch {
	case r.adopt != "":
		return v1alpha1.ResolveAdoptPrefix + r.adopt
	case r.resubmit:
		return v1alpha1.ResolveResubmit
	}
	return v1alpha1.ResolveAbandon
}

func newResolveCommand(o *Options) *cobra.Command {
	opts := &resolveOptions{}
	cmd := &cobra.Command{
		Use:   "resolve TASK (--adopt ID | --resubmit | --abandon)",
		Short: "Answer a submission whose outcome is unknown: adopt the job, resubmit it, or abandon it",
		Long: `When the operator sent a task's start request and no answer says what the vendor did (a timeout, a 5xx,
an answer without the job's ID), and sending it again is not safe, the task waits for a person: its
Submitted condition is Unknown with reason SubmitOutcomeUnknown, and a Warning event says where to look
in the vendor system. Look there, then answer with one of:

  --adopt ID    the job exists: track the vendor's job ID
  --resubmit    the job was not started: send the request again, as a new attempt with a new key
  --abandon     give up: the task fails with reason SubmitAbandoned

resolve sets the annotation tasks.asynctask.dev/resolve, waits until the operator has acted on it (it
removes the annotation) and prints the outcome. It refuses a task that is not waiting for a person.

Exit codes: 0 once the operator acted, 1 when the task is not waiting for a person, 2 when the operator did
not act within --timeout, 3 when the task does not exist or cannot be read.`,
		Example: `  kubectl asynctask resolve import-orders --adopt 3f2c9d0e8b7a4c1d9e0f1a2b3c4d5e6f
  kubectl asynctask resolve import-orders --resubmit
  kubectl asynctask resolve import-orders --abandon`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTaskNames(o, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("adopt") && opts.adopt == "" {
				return errors.New("--adopt needs the vendor's job ID")
			}
			return resolve(cmd.Context(), o, opts, args[0])
		},
	}
	cmd.Flags().StringVar(&opts.adopt, "adopt", "", "the vendor's ID of the job the request started: track it")
	cmd.Flags().BoolVar(&opts.resubmit, "resubmit", false, "the job was not started: send the request again (a new attempt)")
	cmd.Flags().BoolVar(&opts.abandon, "abandon", false, "give up on the job: the task fails (SubmitAbandoned)")
	cmd.Flags().DurationVar(&opts.timeout, "timeout", time.Minute, "how long to wait for the operator to act")
	cmd.MarkFlagsMutuallyExclusive("adopt", "resubmit", "abandon")
	cmd.MarkFlagsOneRequired("adopt", "resubmit", "abandon")
	return cmd
}

func resolve(ctx context.Context, o *Options, opts *resolveOptions, name string) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns, err := o.Namespace()
	if err != nil {
		return err
	}
	task, err := readTask(ctx, c, client.ObjectKey{Namespace: ns, Name: name})
	if err != nil {
		return err
	}
	if !task.SubmitOutcomeUnknown() {
		return fmt.Errorf("asynctask %s is not waiting for a person to resolve its submission: %s", name, submissionState(task))
	}
	answer := opts.answer()
	if err := patchAnnotation(ctx, c, task, v1alpha1.AnnotationResolve, answer); err != nil {
		return err
	}
	fmt.Fprintf(o.Streams.Out, "%s: %s=%s set; waiting for the operator ...\n", name, v1alpha1.AnnotationResolve, answer)

	waitCtx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	got, err := watchTask(waitCtx, c, client.ObjectKeyFromObject(task), func(t *v1alpha1.AsyncTask) bool {
		return resolved(t, attempt(task))
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return timeoutError("the operator did not act on "+v1alpha1.AnnotationResolve, opts.timeout)
	}
	if err != nil {
		return err
	}
	printResolved(o.Streams.Out, got)
	return nil
}

// resolved reports whether the operator has acted on the answer to the task's attempt `before`: it removed
// the annotation, and the task finished or its submission moved on. A resubmit is followed until its new
// attempt is sent (Submitting passes), which may be unknown again.
func resolved(task *v1alpha1.AsyncTask, before int32) bool {
	if _, pending := task.Annotations[v1alpha1.AnnotationResolve]; pending {
		return false
	}
	if task.IsFinished() {
		return true
	}
	c := task.SubmittedCondition()
	switch {
	case c == nil, c.Reason == v1alpha1.ReasonSubmitting:
		return false
	case c.Reason == v1alpha1.ReasonSubmitOutcomeUnknown:
		return attempt(task) > before
	}
	return true
}

// attempt is the number of the task's latest submission attempt, 0 before the first.
func attempt(task *v1alpha1.AsyncTask) int32 {
	if task.Status.Submission == nil {
		return 0
	}
	return task.Status.Submission.Attempt
}

// submissionState says where a task's submission stands, for a task resolve refuses.
func submissionState(task *v1alpha1.AsyncTask) string {
	if task.Spec.Submit == nil {
		return "it has spec.taskID; the operator did not start its job"
	}
	c := task.SubmittedCondition()
	if c == nil {
		return "the operator has not looked at it yet"
	}
	state := fmt.Sprintf("Submitted is %s (%s)", c.Status, c.Reason)
	if task.IsFinished() {
		state += fmt.Sprintf(", and the task is finished (%s)", task.Status.Phase)
	}
	return state
}

// printResolved prints what the operator did with the answer.
func printResolved(w io.Writer, task *v1alpha1.AsyncTask) {
	c := task.SubmittedCondition()
	if c == nil {
		c = &metav1.Condition{Status: metav1.ConditionUnknown, Reason: "-"}
	}
	fmt.Fprintf(w, "%s: Submitted %s (%s)", task.Name, c.Status, c.Reason)
	if c.Message != "" {
		fmt.Fprintf(w, ": %s", c.Message)
	}
	fmt.Fprintln(w)
	if id := task.EffectiveTaskID(); id != "" {
		fmt.Fprintf(w, "  task ID:  %s\n", id)
	}
	if n := attempt(task); n > 0 {
		fmt.Fprintf(w, "  attempt:  %d\n", n)
	}
	fmt.Fprintf(w, "  state:    %s\n", stateLine(task))
}
