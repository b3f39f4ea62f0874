package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// syncBuffer is an output a test reads while the command writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// background is a command running in this process, like run's, whose output the test reads as it goes.
type background struct {
	stdout, stderr *syncBuffer
	done           chan result
}

// start runs the command in the background until it returns or ctx ends.
func start(ctx context.Context, args ...string) *background {
	b := &background{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan result, 1)}
	cmd := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: b.stdout, ErrOut: b.stderr})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	go func() {
		err := cmd.ExecuteContext(ctx)
		if err != nil && err.Error() != "" {
			fmt.Fprintln(b.stderr, "Error:", err)
		}
		b.done <- result{stdout: b.stdout.String(), stderr: b.stderr.String(), code: ExitCode(err)}
	}()
	return b
}

// waitForOutput polls (bounded) until the command has printed want.
func (b *background) waitForOutput(t *testing.T, want string) {
	t.Helper()
	eventually(t, func() bool { return strings.Contains(b.stdout.String(), want) }, func() string {
		return fmt.Sprintf("the command did not print %q; stdout:\n%s\nstderr:\n%s", want, b.stdout, b.stderr)
	})
}

// result waits (bounded) for the command to return.
func (b *background) result(t *testing.T) result {
	t.Helper()
	select {
	case r := <-b.done:
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("the command did not return within 60s; stdout:\n%s\nstderr:\n%s", b.stdout, b.stderr)
		return result{}
	}
}
