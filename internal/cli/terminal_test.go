package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The live views as a person sees them: the binary runs in a real terminal (tmux, 160x40), and the test reads
// the screen with capture-pane.

// terminal is a tmux server of its own running one command in a 160x40 window.
type terminal struct {
	socket, exitFile string
}

// newTerminal builds kubectl-asynctask and runs it with args against the test control plane in a new terminal.
// When the command ends, its exit code is written to a file and the window stays, so its last screen can be
// read.
func newTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed (make test installs it with apt-get): the live views cannot be tested")
		}
		t.Skip("tmux is not installed (make test installs it with apt-get when it can)")
	}
	binary := pluginBinary(t)
	dir := t.TempDir()
	term := &terminal{socket: filepath.Join(dir, "tmux.sock"), exitFile: filepath.Join(dir, "exit")}
	command := fmt.Sprintf("KUBECONFIG=%s %s %s; echo $? > %s; exec cat", kubeconfig, binary, strings.Join(args, " "),
		term.exitFile)
	start := exec.Command(tmux, "-S", term.socket, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "40",
		"sh", "-c", command)
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", term.socket, "kill-server").Run() })
	return term
}

// screen is what the terminal shows now, without trailing blank lines.
func (term *terminal) screen(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("tmux", "-S", term.socket, "capture-pane", "-p").Output()
	if err != nil {
		t.Fatalf("tmux capture-pane: %v", err)
	}
	return strings.TrimRight(string(out), "\n ")
}

// waitForScreen polls (bounded) until the screen satisfies ok, and returns that screen.
func (term *terminal) waitForScreen(t *testing.T, what string, ok func(screen string) bool) string {
	t.Helper()
	var screen string
	eventually(t, func() bool { screen = term.screen(t); return ok(screen) },
		func() string { return fmt.Sprintf("the screen did not show %s; it shows:\n%s", what, screen) })
	return screen
}

func (term *terminal) sendKeys(t *testing.T, keys ...string) {
	t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-S", term.socket, "send-keys"}, keys...)...).CombinedOutput(); err != nil {
		t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
}

// exitCode waits (bounded) for the command to end and returns its exit code.
func (term *terminal) exitCode(t *testing.T) int {
	t.Helper()
	var data []byte
	eventually(t, func() bool {
		var err error
		data, err = os.ReadFile(term.exitFile)
		return err == nil && strings.HasSuffix(string(data), "\n")
	}, func() string { return "the command did not end; the screen shows:\n" + term.screen(t) })
	code, err := strconv.Atoi(strings.TrimSpace(string(data)))
	must(t, err)
	return code
}

// row is the line of the screen that shows task name, or "" when there is none or more than one.
func row(screen, name string) string {
	var found []string
	for line := range strings.SplitSeq(screen, "\n") {
		if strings.HasPrefix(line, name+" ") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		return ""
	}
	return found[0]
}

var percentPattern = regexp.MustCompile(`(\d+)%`)

// percent is the progress a row shows, or -1.
func percent(row string) int {
	m := percentPattern.FindStringSubmatch(row)
	if m == nil {
		return -1
	}
	p, _ := strconv.Atoi(m[1])
	return p
}

// shows reports whether the screen has exactly one row for each task, with the progress given.
func shows(screen string, progress map[string]int) bool {
	for name, p := range progress {
		if percent(row(screen, name)) != p {
			return false
		}
	}
	return true
}

func lineCount(screen string) int { return len(strings.Split(screen, "\n")) }

func TestWaitInATerminalMovesTheBarsAndExitsWithTheOutcome(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	tasks := map[string]*v1alpha1.AsyncTask{
		"render-frames":  newTask(t, ns, "render-frames", "vrni", running(20)),
		"encode-video":   newTask(t, ns, "encode-video", "vrni", running(45)),
		"upload-archive": newTask(t, ns, "upload-archive", "vrni", running(70)),
	}
	term := newTerminal(t, "wait", "-n", ns, "render-frames", "encode-video", "upload-archive")

	first := term.waitForScreen(t, "the three tasks at 20%, 45% and 70%", func(screen string) bool {
		return shows(screen, map[string]int{"render-frames": 20, "encode-video": 45, "upload-archive": 70})
	})
	t.Logf("wait, three tasks at different progress:\n%s", first)
	if !strings.HasPrefix(first, "NAME ") || !strings.Contains(first, "█") || !strings.Contains(first, "░") {
		t.Errorf("want a table with bars (█ done, ░ to go), got:\n%s", first)
	}

	sim.AddTask(tasks["render-frames"].Spec.TaskID, running(60))
	moved := term.waitForScreen(t, "render-frames at 60%", func(screen string) bool {
		return shows(screen, map[string]int{"render-frames": 60})
	})
	before, after := row(first, "render-frames"), row(moved, "render-frames")
	if strings.Count(after, "█") <= strings.Count(before, "█") {
		t.Errorf("the bar of render-frames did not grow from 20%% to 60%%:\n%s\n%s", before, after)
	}
	if lineCount(moved) != lineCount(first) {
		t.Errorf("the table was not redrawn in place: %d lines, then %d:\n%s\n---\n%s", lineCount(first),
			lineCount(moved), first, moved)
	}

	for _, task := range tasks {
		sim.AddTask(task.Spec.TaskID, vendorsim.Step{Phase: vendorsim.Succeeded, Message: "done"})
	}
	if code := term.exitCode(t); code != ExitOK {
		t.Errorf("exit code %d, want 0; the screen shows:\n%s", code, term.screen(t))
	}
	last := term.screen(t)
	t.Logf("wait, the end:\n%s", last)
	if n := strings.Count(last, "DURATION"); n != 1 {
		t.Errorf("want one summary under the final table, found %d:\n%s", n, last)
	}
	if strings.Count(last, "NAME ") != 2 || strings.Count(last, "Succeeded") != 6 {
		t.Errorf("want the final table and the summary, each with the three tasks Succeeded:\n%s", last)
	}
}

func TestGetWatchInATerminalUpdatesTheTableInPlace(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	one := newTask(t, ns, "one", "vrni", running(10))
	newTask(t, ns, "two", "vrni", running(50))
	newTask(t, ns, "three", "to", vendorsim.Step{Phase: vendorsim.Running, Message: "Invalidating caches"})
	term := newTerminal(t, "get", "-n", ns, "-w")

	first := term.waitForScreen(t, "one at 10%, two at 50%, three without progress", func(screen string) bool {
		return shows(screen, map[string]int{"one": 10, "two": 50, "three": -1}) && strings.Contains(row(screen, "three"), "Running")
	})
	sim.AddTask(one.Spec.TaskID, running(30), running(60))
	var middle string
	last := term.waitForScreen(t, "one at 60%", func(screen string) bool {
		if shows(screen, map[string]int{"one": 30}) {
			middle = screen
		}
		return shows(screen, map[string]int{"one": 60})
	})
	t.Logf("get -w:\n%s\n---\n%s", first, last)
	for _, screen := range []string{middle, last} {
		if screen != "" && (lineCount(screen) != lineCount(first) || row(screen, "two") == "" || row(screen, "three") == "") {
			t.Errorf("the table was not redrawn in place: %d lines, then %d:\n%s\n---\n%s", lineCount(first),
				lineCount(screen), first, screen)
		}
	}
	if strings.Count(row(last, "one"), "█") <= strings.Count(row(first, "one"), "█") {
		t.Errorf("the bar of one did not grow:\n%s\n%s", row(first, "one"), row(last, "one"))
	}

	term.sendKeys(t, "C-c")
	if code := term.exitCode(t); code != ExitInterrupted {
		t.Errorf("exit code %d after Ctrl-C, want %d; the screen shows:\n%s", code, ExitInterrupted, term.screen(t))
	}
}
