package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What wait waits for (--for).
const (
	waitForSucceeded = "succeeded"
	waitForFinished  = "finished"
)

// waitOptions are wait's flags.
type waitOptions struct {
	*Options
	selector string
	waitFor  string
	timeout  time.Duration
}

func newWaitCommand(o *Options) *cobra.Command {
	w := &waitOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "wait (TASK... | -l SELECTOR) [--for succeeded|finished] [--timeout DURATION]",
		Short: "Wait for AsyncTasks to succeed (or finish), with a live progress bar and ETA for each",
		Long: `Wait for AsyncTasks to succeed (--for succeeded, the default) or to finish either way (--for finished),
showing a live progress bar, the phase, the ETA and the message of each task on a terminal. When the output is
not a terminal it prints one line per change instead, with no control characters, safe for CI logs. The last
lines give each task's phase, how long it ran, and its message.

With -l the tasks are those the selector matches when wait starts. It watches the tasks; it never polls.

Exit codes:
  0    every task succeeded (--for finished: every task finished, none Failed)
  1    a task failed: at once with --for succeeded; with --for finished once all finished
  2    --timeout passed first (by default there is no timeout)
  3    a task does not exist or cannot be read, no task matches the selector, or a task was deleted before it
       finished
  130  interrupted with Ctrl-C`,
		Example: `  kubectl asynctask wait render-1 render-2
  kubectl asynctask wait -l batch=nightly --for finished --timeout 2h`,
		ValidArgsFunction: completeTaskNames(o, false),
		RunE:              func(cmd *cobra.Command, args []string) error { return w.run(cmd.Context(), args) },
	}
	cmd.Flags().StringVarP(&w.selector, "selector", "l", "", "Wait for the tasks whose labels match this selector when wait starts (e.g. batch=nightly).")
	cmd.Flags().StringVar(&w.waitFor, "for", waitForSucceeded, "succeeded: every task succeeds (exit 1 at the first failure); finished: every task ends, either way (exit 1 when any failed).")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 0, "Give up (exit 2) after this long, e.g. 30m; 0 waits as long as it takes.")
	return cmd
}

// errTimedOut is the cause of wait's context ending at --timeout.
var errTimedOut = errors.New("timed out")

func (w *waitOptions) run(ctx context.Context, names []string) error {
	q, err := w.query(names)
	if err != nil {
		return err
	}
	c, err := w.Client()
	if err != nil {
		return err
	}
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, w.timeout, errTimedOut)
		defer cancel()
	}
	tasks, missing, resourceVersion, err := listTasks(ctx, c, q)
	switch {
	case err != nil && errors.Is(context.Cause(ctx), errTimedOut):
		return w.timedOut(q, nil)
	case err != nil:
		return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("reading AsyncTasks %s: %w", q.describe(), err)}
	case len(missing) > 0:
		return notFound(q, missing)
	case len(tasks) == 0:
		return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("no AsyncTasks %s", q.describe())}
	}
	// The tasks are those listed now: a task created later that the selector matches is not waited for.
	q.names = nil
	board := newTaskBoard()
	now := time.Now()
	for i := range tasks {
		board.observe(taskEvent{task: &tasks[i]}, now)
		q.names = append(q.names, tasks[i].Name)
	}

	stopped, err := w.show(ctx, c, q, resourceVersion, board)
	if err := w.printSummary(w.Streams.Out, board); err != nil {
		return err
	}
	done, outcome := w.outcome(board)
	switch {
	case err != nil: // Ctrl-C, or the output failed
		return err
	case done:
		return outcome
	case errors.Is(context.Cause(ctx), errTimedOut):
		return w.timedOut(q, board)
	default:
		return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("watching AsyncTasks %s: %w", q.describe(), stopped)}
	}
}

// show follows the tasks until the outcome is known, the time is up or the watch fails (stopped says why): a
// live view on a terminal, lines for logs elsewhere. err is Ctrl-C's, or the output's.
func (w *waitOptions) show(ctx context.Context, c client.WithWatch, q taskQuery, resourceVersion string,
	board *taskBoard) (stopped, err error) {
	out := w.Streams.Out
	done, _ := w.outcome(board)
	switch {
	case done && IsTerminal(out): // the table the live view would have ended with
		tb := newTable(terminalLook(out).taskColumns(columnSet{}))
		tb.maxWidth = terminalWidth(out)
		return nil, printLines(out, tb.lines(board.list(), time.Now(), true))
	case done:
		return nil, w.printChanges(out, board.list(), time.Now())
	case IsTerminal(out):
		view := newLiveView(board, newTable(terminalLook(out).taskColumns(columnSet{})), w.settled)
		err := runLive(ctx, w.Streams.In, out, view, func(ctx context.Context, send func(taskEvent)) error {
			return followTasks(ctx, c, q, resourceVersion, board.keys, send)
		})
		return view.stopped, err
	default:
		return w.followPlain(ctx, c, q, resourceVersion, board)
	}
}

func (w *waitOptions) query(names []string) (taskQuery, error) {
	if w.waitFor != waitForSucceeded && w.waitFor != waitForFinished {
		return taskQuery{}, fmt.Errorf("--for %q: use succeeded or finished", w.waitFor)
	}
	if w.timeout < 0 {
		return taskQuery{}, errors.New("--timeout cannot be negative")
	}
	if (len(names) > 0) == (w.selector != "") {
		return taskQuery{}, errors.New("name the tasks to wait for, or give a selector (-l), not both")
	}
	ns, err := w.Namespace()
	if err != nil {
		return taskQuery{}, err
	}
	q := taskQuery{namespace: ns, names: names}
	if w.selector != "" {
		if q.selector, err = labels.Parse(w.selector); err != nil {
			return q, fmt.Errorf("selector %q: %w", w.selector, err)
		}
	}
	return q, nil
}

// outcome is wait's result for what the board holds: done is false while it must wait on, and err carries the
// exit code of an outcome other than success.
func (w *waitOptions) outcome(board *taskBoard) (done bool, err error) {
	var failed, deleted, unfinished []*trackedTask
	for _, t := range board.list() {
		switch {
		case t.task.Failed():
			failed = append(failed, t)
		case t.task.IsFinished():
		case t.deleted:
			deleted = append(deleted, t)
		default:
			unfinished = append(unfinished, t)
		}
	}
	switch {
	case len(failed) > 0 && (w.waitFor == waitForSucceeded || len(deleted)+len(unfinished) == 0):
		return true, &ExitError{Code: ExitFailed, Err: failure(failed)}
	case len(deleted) > 0:
		return true, &ExitError{Code: ExitNotFound, Err: fmt.Errorf("%s deleted before it finished", describeTasks(deleted))}
	}
	return len(unfinished) == 0, nil
}

func (w *waitOptions) settled(board *taskBoard) bool {
	done, _ := w.outcome(board)
	return done
}

// failure says which tasks failed and, for one, why.
func failure(failed []*trackedTask) error {
	if len(failed) > 1 {
		return fmt.Errorf("%s failed", describeTasks(failed))
	}
	task := failed[0].task
	why := task.Status.Message
	if c := task.FinishedCondition(); c != nil && c.Reason != "" {
		why = fmt.Sprintf("%s: %s", c.Reason, why)
	}
	return fmt.Errorf("AsyncTask %q failed (%s)", task.Name, oneLine(why))
}

func describeTasks(tasks []*trackedTask) string {
	names := make([]string, len(tasks))
	for i, t := range tasks {
		names[i] = t.task.Name
	}
	if len(names) == 1 {
		return "AsyncTask " + quoteNames(names)
	}
	return "AsyncTasks " + quoteNames(names)
}

func (w *waitOptions) timedOut(q taskQuery, board *taskBoard) error {
	err := fmt.Errorf("timed out after %s waiting for AsyncTasks %s to %s", w.timeout, q.describe(), strings.TrimSuffix(w.waitFor, "ed"))
	if board != nil {
		var waiting []*trackedTask
		for _, t := range board.list() {
			if !t.task.IsFinished() {
				waiting = append(waiting, t)
			}
		}
		if len(waiting) > 0 {
			err = fmt.Errorf("%w; still waiting for %s", err, describeTasks(waiting))
		}
	}
	return &ExitError{Code: ExitTimeout, Err: err}
}

// followPlain prints a line for each task now and for each change, until the outcome is known, the time is up
// or the watch fails (stopped says why).
func (w *waitOptions) followPlain(ctx context.Context, c client.WithWatch, q taskQuery, resourceVersion string,
	board *taskBoard) (stopped, err error) {
	out := w.Streams.Out
	if err := w.printChanges(out, board.list(), time.Now()); err != nil {
		return nil, err
	}
	watchCtx, settle := context.WithCancel(ctx)
	defer settle()
	var printErr error
	stopped = followTasks(watchCtx, c, q, resourceVersion, board.keys, func(ev taskEvent) {
		now := time.Now()
		t, changed := board.observe(ev, now)
		if changed && printErr == nil {
			printErr = w.printChanges(out, []*trackedTask{t}, now)
		}
		if printErr != nil || w.settled(board) {
			settle()
		}
	})
	if printErr != nil {
		return nil, printErr
	}
	if ctx.Err() == nil && errors.Is(stopped, context.Canceled) { // settled
		return nil, nil
	}
	return stopped, nil
}

// printChanges prints one line per task, for logs: the time (UTC), name, phase, progress ("-" when the vendor
// reports none), ETA ("-" when there is none) and message.
//
//	2025-07-01T10:04:05Z render-1 Running 40% eta 3m20s Encoding frames
func (w *waitOptions) printChanges(out io.Writer, tasks []*trackedTask, now time.Time) error {
	lines := make([]string, len(tasks))
	for i, t := range tasks {
		phase, message := orDash(string(t.task.Status.Phase)), oneLine(t.task.Status.Message)
		if t.deleted {
			phase, message = "Deleted", ""
		}
		lines[i] = strings.TrimRight(fmt.Sprintf("%s %s %s %s eta %s %s", now.UTC().Format(time.RFC3339),
			t.task.Name, phase, plainLook().progress(t), orDash(t.eta(now)), message), " ")
	}
	return printLines(out, lines)
}

// printSummary prints the last lines: each task's phase, how long it ran and its message.
func (w *waitOptions) printSummary(out io.Writer, board *taskBoard) error {
	l := plainLook()
	if IsTerminal(out) {
		l = terminalLook(out)
	}
	tb := newTable(l.summaryColumns())
	tb.maxWidth = terminalWidth(out)
	// A blank line sets the summary apart from the live table or the change lines above.
	return printLines(out, append([]string{""}, tb.lines(board.list(), time.Now(), true)...))
}
