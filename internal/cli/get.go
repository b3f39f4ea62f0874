package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// getOptions are get's flags.
type getOptions struct {
	*Options
	selector string
	watch    bool
	output   string
}

func newGetCommand(o *Options) *cobra.Command {
	g := &getOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "get [TASK...]",
		Short: "Show AsyncTasks: a progress bar, the phase, ETA, age and message of each",
		Long: `Show AsyncTasks in a table: a progress bar for each (when its vendor reports progress), the phase, an
estimate of the time left (ETA), the age and the message.

With -w the table is redrawn in place from a watch as the tasks change; it never polls. When the output is not
a terminal there are no colours or bars (progress reads "40%", or "-" when the vendor reports none), and -w
prints one line per change.

Exit codes: 0, or 3 when a task named does not exist or cannot be read.`,
		Example: `  kubectl asynctask get
  kubectl asynctask get render-1 render-2 -w
  kubectl asynctask get -A -l team=video -o wide
  kubectl asynctask get render-1 -o yaml`,
		ValidArgsFunction: completeTaskNames(o, false),
		RunE:              func(cmd *cobra.Command, args []string) error { return g.run(cmd.Context(), args) },
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "Show tasks in every namespace.")
	cmd.Flags().StringVarP(&g.selector, "selector", "l", "", "Show only tasks whose labels match this selector (e.g. app=render).")
	cmd.Flags().BoolVarP(&g.watch, "watch", "w", false, "Keep the table up to date from a watch.")
	cmd.Flags().StringVarP(&g.output, "output", "o", "", "Output format: wide (adds BACKEND, TASK ID and VENDOR STATUS), json or yaml.")
	return cmd
}

func (g *getOptions) run(ctx context.Context, names []string) error {
	if err := g.validate(names); err != nil {
		return err
	}
	q, err := g.query(names)
	if err != nil {
		return err
	}
	c, err := g.Client()
	if err != nil {
		return err
	}
	tasks, missing, resourceVersion, err := listTasks(ctx, c, q)
	if err != nil {
		if len(names) > 0 {
			return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("reading AsyncTasks %s: %w", q.describe(), err)}
		}
		return err
	}
	if g.watch && len(missing) > 0 {
		return notFound(q, missing)
	}
	board := newTaskBoard()
	now := time.Now()
	for i := range tasks {
		board.observe(taskEvent{task: &tasks[i]}, now)
	}
	out := g.Streams.Out
	switch {
	case g.output == "json" || g.output == "yaml":
		// kubectl's -w prints each object on its own, the first versions too.
		err = g.printObjects(out, tasks, len(names) == 1 || g.watch)
	case g.watch && IsTerminal(out):
		return g.watchLive(ctx, c, q, resourceVersion, board)
	default:
		if len(tasks) == 0 && len(missing) == 0 && !g.watch {
			_, err = fmt.Fprintf(g.Streams.ErrOut, "No AsyncTasks found %s.\n", q.describe())
			return err
		}
		if len(tasks) > 0 || g.watch {
			tb := newTable(g.look().taskColumns(g.columns()))
			tb.maxWidth = terminalWidth(out)
			err = printLines(out, tb.lines(board.list(), now, true))
		}
	}
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return notFound(q, missing)
	}
	if g.watch {
		return g.watchPlain(ctx, c, q, resourceVersion, board)
	}
	return nil
}

func (g *getOptions) validate(names []string) error {
	switch g.output {
	case "", "wide", "json", "yaml":
	default:
		return fmt.Errorf("unknown output format %q: use wide, json or yaml", g.output)
	}
	if len(names) > 0 && g.selector != "" {
		return errors.New("name tasks or give a selector (-l), not both")
	}
	if len(names) > 0 && g.AllNamespaces {
		return errors.New("tasks are named within one namespace: use -n with names, or -A without")
	}
	return nil
}

func (g *getOptions) query(names []string) (taskQuery, error) {
	q := taskQuery{names: names}
	if !g.AllNamespaces {
		ns, err := g.Namespace()
		if err != nil {
			return q, err
		}
		q.namespace = ns
	}
	if g.selector != "" {
		selector, err := labels.Parse(g.selector)
		if err != nil {
			return q, fmt.Errorf("selector %q: %w", g.selector, err)
		}
		q.selector = selector
	}
	return q, nil
}

func (g *getOptions) columns() columnSet {
	return columnSet{namespace: g.AllNamespaces, wide: g.output == "wide", age: true}
}

func (g *getOptions) look() look {
	if IsTerminal(g.Streams.Out) {
		return terminalLook(g.Streams.Out)
	}
	return plainLook()
}

// notFound is the error for tasks named that do not exist.
func notFound(q taskQuery, missing []string) error {
	noun := "AsyncTask"
	if len(missing) > 1 {
		noun = "AsyncTasks"
	}
	q.names = missing
	return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("%s %s not found", noun, q.describe())}
}

// printObjects prints the tasks as kubectl does: a task asked for by name on its own, else a List; each on its
// own when separate is set.
func (g *getOptions) printObjects(w io.Writer, tasks []v1alpha1.AsyncTask, separate bool) error {
	printer := g.printer()
	if separate {
		for i := range tasks {
			if err := printer.PrintObj(forPrinting(&tasks[i]), w); err != nil {
				return err
			}
		}
		return nil
	}
	list := &metav1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: []runtime.RawExtension{}}
	for i := range tasks {
		list.Items = append(list.Items, runtime.RawExtension{Object: forPrinting(&tasks[i])})
	}
	return printer.PrintObj(list, w)
}

func (g *getOptions) printer() printers.ResourcePrinter {
	if g.output == "yaml" {
		return &printers.YAMLPrinter{}
	}
	return &printers.JSONPrinter{}
}

// forPrinting is the task as kubectl prints it: with its kind, without managed fields.
func forPrinting(task *v1alpha1.AsyncTask) *v1alpha1.AsyncTask {
	task = task.DeepCopy()
	task.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("AsyncTask"))
	task.ManagedFields = nil
	return task
}

// watchLive redraws the table in place until Ctrl-C or the watch fails.
func (g *getOptions) watchLive(ctx context.Context, c client.WithWatch, q taskQuery, resourceVersion string,
	board *taskBoard) error {
	tb := newTable(g.look().taskColumns(g.columns()))
	view := newLiveView(board, tb, nil)
	err := runLive(ctx, g.Streams.In, g.Streams.Out, view, func(ctx context.Context, send func(taskEvent)) error {
		return followTasks(ctx, c, q, resourceVersion, board.keys, send)
	})
	if err != nil {
		return err
	}
	if view.stopped != nil && !errors.Is(view.stopped, context.Canceled) {
		return fmt.Errorf("watching AsyncTasks %s: %w", q.describe(), view.stopped)
	}
	return nil
}

// watchPlain prints a line (or an object, with -o json|yaml) for each change, as `kubectl get -w` does, until
// ctx ends.
func (g *getOptions) watchPlain(ctx context.Context, c client.WithWatch, q taskQuery, resourceVersion string,
	board *taskBoard) error {
	out := g.Streams.Out
	tb := newTable(g.look().taskColumns(g.columns()))
	tb.lines(board.list(), time.Now(), true) // the widths of the table printed above
	var printErr error
	err := followTasks(ctx, c, q, resourceVersion, board.keys, func(ev taskEvent) {
		t, changed := board.observe(ev, time.Now())
		if !changed || printErr != nil {
			return
		}
		if g.output == "json" || g.output == "yaml" {
			printErr = g.printer().PrintObj(forPrinting(t.task), out)
			return
		}
		printErr = printLines(out, tb.lines([]*trackedTask{t}, time.Now(), false))
	})
	if printErr != nil {
		return printErr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("watching AsyncTasks %s: %w", q.describe(), err)
	}
	return nil
}

func printLines(w io.Writer, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}
