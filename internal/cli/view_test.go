package cli

import (
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"
	"github.com/muesli/termenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// These tests need no API server: they drive the board, the tables and the live view's model directly.

var viewNow = time.Date(2025, 7, 1, 10, 0, 0, 0, time.UTC)

// taskAt is a task as the operator writes it in phase with progress (nil: the vendor reports none); finished
// tasks carry the Finished and Ready conditions that wait reads.
func taskAt(name string, phase v1alpha1.TaskPhase, progress *int32, message string) *v1alpha1.AsyncTask {
	task := &v1alpha1.AsyncTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: name, CreationTimestamp: metav1.NewTime(viewNow.Add(-90 * time.Second))},
		Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: "vrni"}, TaskID: "id-" + name},
		Status: v1alpha1.AsyncTaskStatus{Phase: phase, Progress: progress, Message: message,
			StartTime: &metav1.Time{Time: viewNow.Add(-60 * time.Second)}},
	}
	if phase.Finished() {
		ready := metav1.ConditionFalse
		if phase == v1alpha1.TaskPhaseSucceeded {
			ready = metav1.ConditionTrue
		}
		task.Status.CompletionTime = &metav1.Time{Time: viewNow.Add(-10 * time.Second)}
		task.Status.Conditions = []metav1.Condition{
			{Type: v1alpha1.ConditionFinished, Status: metav1.ConditionTrue, Reason: "Done"},
			{Type: v1alpha1.ConditionReady, Status: ready, Reason: "Done"},
		}
	}
	return task
}

func boardOf(tasks ...*v1alpha1.AsyncTask) *taskBoard {
	board := newTaskBoard()
	for _, task := range tasks {
		board.observe(taskEvent{task: task}, viewNow)
	}
	return board
}

func TestTableLinesUpColumnsAndCutsTheLastToTheWidth(t *testing.T) {
	board := boardOf(
		taskAt("render", v1alpha1.TaskPhaseRunning, ptr.To[int32](40), "Encoding frames 1200 to 2400 of 9600"),
		taskAt("cdn-invalidate", v1alpha1.TaskPhaseSucceeded, nil, ""),
	)
	tb := newTable(plainLook().taskColumns(columnSet{age: true}))
	// ETA: 60 s for 40 %, so 90 s for the 60 % to go (a linear estimate from the start: one sample so far).
	want := []string{
		"NAME             PROGRESS   PHASE       ETA     AGE   MESSAGE",
		"render           40%        Running     1m30s   90s   Encoding frames 1200 to 2400 of 9600",
		"cdn-invalidate   -          Succeeded   -       90s",
	}
	if diff := cmp.Diff(want, tb.lines(board.list(), viewNow, true)); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}

	tb.maxWidth = 60
	for _, line := range tb.lines(board.list(), viewNow, true) {
		if w := ansi.StringWidth(line); w > 60 {
			t.Errorf("line of width %d in a 60-column terminal: %q", w, line)
		}
	}
	if got := tb.lines(board.list(), viewNow, false)[0]; !strings.HasSuffix(got, "Encod…") || ansi.StringWidth(got) != 60 {
		t.Errorf("the message is not cut with an ellipsis at the width: %q", got)
	}

	// A narrower cell later does not narrow its column: a table redrawn in place keeps its layout.
	board.observe(taskEvent{task: taskAt("render", v1alpha1.TaskPhaseRunning, ptr.To[int32](40), "")}, viewNow.Add(50*time.Minute))
	tb.maxWidth = 0
	if got := tb.lines(board.list(), viewNow, true)[0]; got != want[0] {
		t.Errorf("the header moved: %q, was %q", got, want[0])
	}
}

func TestCellsOnATerminalHaveBarsAndColoursAndElsewhereNone(t *testing.T) {
	renderer := lipgloss.NewRenderer(io.Discard)
	renderer.SetColorProfile(termenv.ANSI)
	colour := colourLook(renderer)
	running := boardOf(taskAt("render", v1alpha1.TaskPhaseRunning, ptr.To[int32](40), "")).list()[0]
	noProgress := boardOf(taskAt("cdn", v1alpha1.TaskPhaseRunning, nil, "")).list()[0]

	bar := colour.progress(running)
	if plain := ansi.Strip(bar); plain != "████████░░░░░░░░░░░░  40%" {
		t.Errorf("bar %q, want 8 of 20 cells filled and the percentage", plain)
	}
	if !strings.Contains(bar, "\x1b[") || !strings.Contains(colour.phase(v1alpha1.TaskPhaseFailed), "\x1b[31m") {
		t.Errorf("no colours on a terminal: bar %q, Failed %q", bar, colour.phase(v1alpha1.TaskPhaseFailed))
	}
	if got := colour.progress(noProgress); got != "-" {
		t.Errorf("a task without progress shows %q on a terminal, want -", got)
	}

	plain := plainLook()
	for _, got := range []string{plain.progress(running), plain.progress(noProgress), plain.phase(v1alpha1.TaskPhaseFailed)} {
		if strings.ContainsAny(got, "\x1b█░") {
			t.Errorf("plain output has a bar or colour: %q", got)
		}
	}
	if got := plain.progress(running); got != "40%" {
		t.Errorf("plain progress %q, want 40%%", got)
	}
}

func TestVendorTextCannotDriveTheTerminal(t *testing.T) {
	board := boardOf(taskAt("render", v1alpha1.TaskPhaseRunning, ptr.To[int32](40), "line one\nline two\x1b[2J\x1b]0;title\x07\r"))
	for _, columns := range [][]column{plainLook().taskColumns(columnSet{wide: true}), plainLook().summaryColumns()} {
		for _, line := range newTable(columns).lines(board.list(), viewNow, true) {
			if strings.ContainsFunc(line, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Errorf("control characters from the vendor reached the output: %q", line)
			}
		}
	}
}

func TestBoardCountsOnlyWhatTheTableShowsAsAChange(t *testing.T) {
	board := newTaskBoard()
	task := taskAt("render", v1alpha1.TaskPhaseRunning, ptr.To[int32](40), "")
	if _, changed := board.observe(taskEvent{task: task}, viewNow); !changed {
		t.Error("a new task is not a change")
	}
	again := task.DeepCopy()
	again.ResourceVersion, again.Status.ConsecutiveErrors = "2", 1
	if _, changed := board.observe(taskEvent{task: again}, viewNow); changed {
		t.Error("a status write that changes nothing shown counts as a change")
	}
	moved := task.DeepCopy()
	moved.Status.Progress = ptr.To[int32](50)
	if _, changed := board.observe(taskEvent{task: moved}, viewNow); !changed {
		t.Error("progress 40 -> 50 is not a change")
	}
	if tracked, changed := board.observe(taskEvent{task: moved, deleted: true}, viewNow); !changed || !tracked.deleted {
		t.Error("a deletion is not a change")
	}
	if tracked, changed := board.observe(taskEvent{task: taskAt("other", "", nil, ""), deleted: true}, viewNow); tracked != nil || changed {
		t.Error("the deletion of a task never shown was recorded")
	}
	if n := len(board.list()); n != 1 {
		t.Errorf("board holds %d tasks, want 1", n)
	}
}

// The live view's model, driven as Bubble Tea drives it: a change redraws the same rows, a resize cuts them,
// the outcome or Ctrl-C quits.
func TestLiveViewRedrawsItsRowsAndQuits(t *testing.T) {
	board := boardOf(taskAt("a", v1alpha1.TaskPhaseRunning, ptr.To[int32](20), ""), taskAt("b", v1alpha1.TaskPhaseRunning, nil, ""))
	w := &waitOptions{waitFor: waitForSucceeded}
	view := newLiveView(board, newTable(plainLook().taskColumns(columnSet{})), w.settled)
	view.clock = func() time.Time { return viewNow }

	before := view.View()
	view.Update(eventMsg{task: taskAt("a", v1alpha1.TaskPhaseRunning, ptr.To[int32](60), strings.Repeat("x", 200))})
	view.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	after := view.View()
	if strings.Count(before, "\n") != 3 || strings.Count(after, "\n") != 3 {
		t.Errorf("want the header and one row per task, before and after a change:\n%s---\n%s", before, after)
	}
	if !regexp.MustCompile(`(?m)^a +60%`).MatchString(after) {
		t.Errorf("the change is not shown:\n%s", after)
	}
	for _, line := range strings.Split(strings.TrimSuffix(after, "\n"), "\n") {
		if ansi.StringWidth(line) > 80 {
			t.Errorf("a line is wider than the 80-column terminal: %q", line)
		}
	}

	if _, cmd := view.Update(tickMsg(viewNow)); cmd == nil {
		t.Error("the clock stopped: no next tick")
	}
	if _, cmd := view.Update(eventMsg{task: taskAt("a", v1alpha1.TaskPhaseSucceeded, ptr.To[int32](100), "")}); cmd != nil {
		t.Error("the view quit while b still runs")
	}
	_, cmd := view.Update(eventMsg{task: taskAt("b", v1alpha1.TaskPhaseFailed, nil, "")})
	if cmd == nil || cmd() != tea.Quit() {
		t.Error("the view did not quit once the outcome was known")
	}

	get := newLiveView(board, newTable(plainLook().taskColumns(columnSet{})), nil)
	if _, cmd := get.Update(tea.KeyMsg{Type: tea.KeyCtrlC}); cmd == nil || cmd() != tea.Quit() || !get.interrupted {
		t.Error("Ctrl-C does not end the view as interrupted")
	}
}

// wait's outcome for each mix of task states, with the exit code it ends with.
func TestWaitOutcome(t *testing.T) {
	run := func() *v1alpha1.AsyncTask { return taskAt("run", v1alpha1.TaskPhaseRunning, ptr.To[int32](50), "") }
	ok := func() *v1alpha1.AsyncTask { return taskAt("ok", v1alpha1.TaskPhaseSucceeded, ptr.To[int32](100), "") }
	bad := func() *v1alpha1.AsyncTask { return taskAt("bad", v1alpha1.TaskPhaseFailed, nil, "disk full") }
	cases := map[string]struct {
		waitFor  string
		tasks    []*v1alpha1.AsyncTask
		deleted  string
		wantDone bool
		wantCode int
	}{
		"all succeeded":     {waitForSucceeded, []*v1alpha1.AsyncTask{ok()}, "", true, ExitOK},
		"one still running": {waitForSucceeded, []*v1alpha1.AsyncTask{ok(), run()}, "", false, ExitOK},
		"one failed, another running: exit at once":   {waitForSucceeded, []*v1alpha1.AsyncTask{bad(), run()}, "", true, ExitFailed},
		"--for finished, one failed, another running": {waitForFinished, []*v1alpha1.AsyncTask{bad(), run()}, "", false, ExitOK},
		"--for finished, all finished, one failed":    {waitForFinished, []*v1alpha1.AsyncTask{bad(), ok()}, "", true, ExitFailed},
		"--for finished, all succeeded":               {waitForFinished, []*v1alpha1.AsyncTask{ok()}, "", true, ExitOK},
		"deleted before it finished":                  {waitForSucceeded, []*v1alpha1.AsyncTask{ok(), run()}, "run", true, ExitNotFound},
		"deleted after it finished":                   {waitForSucceeded, []*v1alpha1.AsyncTask{ok(), run()}, "ok", false, ExitOK},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			board := boardOf(tc.tasks...)
			if tc.deleted != "" {
				board.observe(taskEvent{task: taskAt(tc.deleted, "", nil, ""), deleted: true}, viewNow)
			}
			done, err := (&waitOptions{waitFor: tc.waitFor}).outcome(board)
			if done != tc.wantDone || ExitCode(err) != tc.wantCode {
				t.Errorf("outcome: done %v, exit code %d (%v); want done %v, exit code %d", done, ExitCode(err), err,
					tc.wantDone, tc.wantCode)
			}
		})
	}
}
