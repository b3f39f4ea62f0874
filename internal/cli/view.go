package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/cli/eta"
)

// What get and wait show of tasks: a board of the tasks seen (each with its ETA estimator), tables drawn from
// it as plain text or with bars and colours, and the live view that redraws a table in place on a terminal.
//
// The live view is a Bubble Tea program (charmbracelet/bubbletea, as Crossplane's `trace -w`): one model holds
// the table and renders the bars (bubbles/progress, drawn statically with ViewAs) and colours (lipgloss); the
// renderer rewrites only the lines that changed, follows the terminal's width, and turns Ctrl-C into a key
// the model answers. vbauerster/mpb draws bars only, not a table around them.

// trackedTask is one task as a command has seen it: its latest version and the estimator fed every version.
type trackedTask struct {
	task      *v1alpha1.AsyncTask
	estimator *eta.Estimator
	deleted   bool
}

// visible is what a change line or a table shows of a task, less what moves with the clock (ETA, age): a
// change is worth a line when this changes.
type visible struct {
	phase        v1alpha1.TaskPhase
	progress     int32 // -1 when the vendor reports none
	message      string
	vendorStatus string
	deleted      bool
}

func (t *trackedTask) visible() visible {
	v := visible{phase: t.task.Status.Phase, progress: -1, message: t.task.Status.Message,
		vendorStatus: t.task.Status.VendorStatus, deleted: t.deleted}
	if p := t.task.Status.Progress; p != nil {
		v.progress = *p
	}
	return v
}

// eta is the estimate of the time left at now: "" for a finished or deleted task, or when there is none.
func (t *trackedTask) eta(now time.Time) string {
	if t.deleted || t.task.Status.Phase.Finished() {
		return ""
	}
	var start time.Time
	if st := t.task.Status.StartTime; st != nil {
		start = st.Time
	}
	var deadline time.Duration
	if d := t.task.Spec.ProgressDeadlineSeconds; d != nil {
		deadline = time.Duration(*d) * time.Second
	}
	return t.estimator.Estimate(now, start, deadline).String()
}

// taskBoard holds the tasks a command shows, in the order it first saw them.
type taskBoard struct {
	keys  []string
	tasks map[string]*trackedTask
}

func newTaskBoard() *taskBoard { return &taskBoard{tasks: map[string]*trackedTask{}} }

// observe records a change seen at now and reports whether what the tables show of the task changed. The
// deletion of a task the board never showed is not recorded.
func (b *taskBoard) observe(ev taskEvent, now time.Time) (*trackedTask, bool) {
	key := taskKey(ev.task)
	t, known := b.tasks[key]
	if !known {
		if ev.deleted {
			return nil, false
		}
		t = &trackedTask{estimator: eta.New()}
		b.tasks[key] = t
		b.keys = append(b.keys, key)
	}
	before := visible{}
	if known {
		before = t.visible()
	}
	if ev.deleted {
		t.deleted = true
	} else {
		t.task, t.deleted = ev.task, false
		var lastChange time.Time
		if lp := ev.task.Status.LastProgressTime; lp != nil {
			lastChange = lp.Time
		}
		t.estimator.Observe(now, ev.task.Status.Progress, lastChange)
	}
	return t, !known || t.visible() != before
}

func (b *taskBoard) list() []*trackedTask {
	tasks := make([]*trackedTask, len(b.keys))
	for i, key := range b.keys {
		tasks[i] = b.tasks[key]
	}
	return tasks
}

// look is how cells are drawn: plain text for pipes and logs, or bars and colours on a terminal.
type look struct {
	terminal bool
	renderer *lipgloss.Renderer
	bar      progress.Model
}

// progressBarWidth is the bar and its percentage (" 40%"), so that a table of bars lines up.
const progressBarWidth = 25

func plainLook() look { return look{} }

// terminalLook draws for the terminal w: bars and colours as far as the terminal's colour profile goes.
func terminalLook(w io.Writer) look { return colourLook(lipgloss.NewRenderer(w)) }

func colourLook(renderer *lipgloss.Renderer) look {
	bar := progress.New(progress.WithWidth(progressBarWidth), progress.WithColorProfile(renderer.ColorProfile()))
	return look{terminal: true, renderer: renderer, bar: bar}
}

// phaseColours are ANSI colours, which every colour terminal has.
var phaseColours = map[v1alpha1.TaskPhase]lipgloss.Color{
	v1alpha1.TaskPhaseSucceeded: "2", // green
	v1alpha1.TaskPhaseFailed:    "1", // red
	v1alpha1.TaskPhaseRunning:   "6", // cyan
	v1alpha1.TaskPhasePending:   "3", // yellow
}

func (l look) phase(phase v1alpha1.TaskPhase) string {
	if phase == "" {
		return "-"
	}
	if !l.terminal {
		return string(phase)
	}
	return l.renderer.NewStyle().Foreground(phaseColours[phase]).Render(string(phase))
}

// progress is a bar with the percentage on a terminal, else "40%"; "-" when the vendor reports none.
func (l look) progress(t *trackedTask) string {
	p := t.task.Status.Progress
	if p == nil {
		return "-"
	}
	if !l.terminal {
		return fmt.Sprintf("%d%%", *p)
	}
	bar := l.bar
	bar.FullColor = string(phaseColours[t.task.Status.Phase])
	return bar.ViewAs(float64(*p) / 100)
}

// column is one column of a task table: its header and what a task shows in it at a time.
type column struct {
	header string
	cell   func(t *trackedTask, now time.Time) string
}

// columnSet picks the columns of a task table.
type columnSet struct {
	namespace bool // -A: a NAMESPACE column first
	wide      bool // -o wide: BACKEND, TASK ID and VENDOR STATUS
	age       bool // get shows AGE; wait's view does not
}

// taskColumns are get's columns, and wait's live view: MESSAGE comes last, as the one cut to the width.
func (l look) taskColumns(set columnSet) []column {
	var columns []column
	if set.namespace {
		columns = append(columns, column{"NAMESPACE", func(t *trackedTask, _ time.Time) string { return t.task.Namespace }})
	}
	columns = append(columns,
		column{"NAME", func(t *trackedTask, _ time.Time) string { return t.task.Name }},
		column{"PROGRESS", func(t *trackedTask, _ time.Time) string { return l.progress(t) }},
		column{"PHASE", func(t *trackedTask, _ time.Time) string { return l.phase(t.task.Status.Phase) }},
		column{"ETA", func(t *trackedTask, now time.Time) string { return orDash(t.eta(now)) }},
	)
	if set.age {
		columns = append(columns, column{"AGE", func(t *trackedTask, now time.Time) string {
			return duration.HumanDuration(now.Sub(t.task.CreationTimestamp.Time))
		}})
	}
	if set.wide {
		columns = append(columns,
			column{"BACKEND", func(t *trackedTask, _ time.Time) string { return t.task.Spec.BackendRef.Name }},
			column{"TASK ID", func(t *trackedTask, _ time.Time) string { return orDash(oneLine(t.task.EffectiveTaskID())) }},
			column{"VENDOR STATUS", func(t *trackedTask, _ time.Time) string { return orDash(oneLine(t.task.Status.VendorStatus)) }},
		)
	}
	return append(columns, column{"MESSAGE", message})
}

// summaryColumns are the last lines of wait: each task's phase, how long it ran, and its message.
func (l look) summaryColumns() []column {
	return []column{
		{"NAME", func(t *trackedTask, _ time.Time) string { return t.task.Name }},
		{"PHASE", func(t *trackedTask, _ time.Time) string { return l.phase(t.task.Status.Phase) }},
		{"DURATION", func(t *trackedTask, now time.Time) string { return orDash(runDuration(t.task, now)) }},
		{"MESSAGE", message},
	}
}

func message(t *trackedTask, _ time.Time) string {
	if t.deleted {
		return "(deleted)"
	}
	return oneLine(t.task.Status.Message)
}

// runDuration is completionTime - startTime, or the time since the start while the task runs; "" before it
// started.
func runDuration(task *v1alpha1.AsyncTask, now time.Time) string {
	if task.Status.StartTime == nil {
		return ""
	}
	end := now
	if task.Status.CompletionTime != nil {
		end = task.Status.CompletionTime.Time
	}
	return duration.HumanDuration(end.Sub(task.Status.StartTime.Time))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine makes text from the vendor safe to print: control characters (newlines, escape sequences that could
// drive the terminal) become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// table lays out tasks in columns as kubectl does: three spaces apart, the last column unpadded and cut to
// maxWidth when that is set. Widths only grow, so that a table redrawn in place, or continued one line per
// change, keeps its layout.
type table struct {
	columns  []column
	widths   []int
	maxWidth int
}

func newTable(columns []column) *table {
	tb := &table{columns: columns, widths: make([]int, len(columns))}
	for i, c := range columns {
		tb.widths[i] = ansi.StringWidth(c.header)
	}
	return tb
}

const columnGap = "   "

// lines renders the tasks at now, under the header when asked.
func (tb *table) lines(tasks []*trackedTask, now time.Time, header bool) []string {
	var rows [][]string
	if header {
		headers := make([]string, len(tb.columns))
		for i, c := range tb.columns {
			headers[i] = c.header
		}
		rows = append(rows, headers)
	}
	for _, t := range tasks {
		row := make([]string, len(tb.columns))
		for i, c := range tb.columns {
			row[i] = c.cell(t, now)
			tb.widths[i] = max(tb.widths[i], ansi.StringWidth(row[i]))
		}
		rows = append(rows, row)
	}
	lines := make([]string, len(rows))
	for r, row := range rows {
		var b strings.Builder
		last := len(row) - 1
		for i, cell := range row[:last] {
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", tb.widths[i]-ansi.StringWidth(cell)))
			b.WriteString(columnGap)
		}
		cell := row[last]
		if tb.maxWidth > 0 {
			room := tb.maxWidth - ansi.StringWidth(b.String())
			cell = ansi.Truncate(cell, max(room, 0), "…")
		}
		lines[r] = strings.TrimRight(b.String()+cell, " ")
	}
	return lines
}

// terminalWidth is w's width in columns when it is a terminal, else 0 (no limit).
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}

// Messages of the live view.
type (
	// eventMsg is a change from the watch.
	eventMsg taskEvent
	// tickMsg redraws what moves with the clock: ETA and age.
	tickMsg time.Time
	// stopMsg ends the view from outside: the watch ended (err says why) or the time is up.
	stopMsg struct{ err error }
)

// liveView is the Bubble Tea model of get -w and wait on a terminal: one table, redrawn in place as changes
// arrive and once a second for the ETA and age.
type liveView struct {
	board *taskBoard
	table *table
	clock func() time.Time
	// settled, when set, ends the view once it holds for the board (wait's outcome is known).
	settled func(*taskBoard) bool

	interrupted bool  // the user pressed Ctrl-C
	stopped     error // why the view was stopped from outside, if it was
}

func newLiveView(board *taskBoard, table *table, settled func(*taskBoard) bool) *liveView {
	return &liveView{board: board, table: table, clock: time.Now, settled: settled}
}

func tick() tea.Cmd { return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) }) }

// Init starts the clock that redraws the ETA and age.
func (v *liveView) Init() tea.Cmd { return tick() }

// Update records a change, a resize or a key, and says when to quit.
func (v *liveView) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case eventMsg:
		v.board.observe(taskEvent(msg), v.clock())
		if v.settled != nil && v.settled(v.board) {
			return v, tea.Quit
		}
	case tickMsg:
		return v, tick()
	case stopMsg:
		v.stopped = msg.err
		return v, tea.Quit
	case tea.WindowSizeMsg:
		v.table.maxWidth = msg.Width
	case tea.KeyMsg:
		if msg.Type == tea.KeyCtrlC {
			v.interrupted = true
			return v, tea.Quit
		}
	}
	return v, nil
}

// View is the table as it stands now.
func (v *liveView) View() string {
	return strings.Join(v.table.lines(v.board.list(), v.clock(), true), "\n") + "\n"
}

// ExitInterrupted is the exit code after Ctrl-C on a live view: 128 + SIGINT, as a shell reports a process
// that SIGINT ended.
const ExitInterrupted = 130

// runLive shows view on the terminal out until it quits: follow sends the watch's changes into it, and its
// return (the watch failed, or ctx ended) stops the view. Ctrl-C ends it with ExitInterrupted; otherwise the
// view is returned for the caller to read the outcome from.
func runLive(ctx context.Context, in io.Reader, out io.Writer, view *liveView,
	follow func(ctx context.Context, send func(taskEvent)) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Keys are read (Ctrl-C, in raw mode) only from a terminal; otherwise the terminal's own Ctrl-C sends
	// SIGINT, which Bubble Tea turns into ErrInterrupted.
	var input io.Reader
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		input = in
	}
	program := tea.NewProgram(view, tea.WithOutput(out), tea.WithInput(input))
	go func() {
		err := follow(ctx, func(ev taskEvent) { program.Send(eventMsg(ev)) })
		program.Send(stopMsg{err: err})
	}()
	_, err := program.Run()
	if err != nil && !isInterrupt(err) {
		return err
	}
	if view.interrupted || isInterrupt(err) {
		return &ExitError{Code: ExitInterrupted, Err: errors.New("interrupted")}
	}
	return nil
}

func isInterrupt(err error) bool { return errors.Is(err, tea.ErrInterrupted) }
