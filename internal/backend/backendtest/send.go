package backendtest

import (
	"context"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Send sends req through b, which must be a backend.Sender, under a backend.WriteTrace of its path, as the
// submission protocol does. It returns the answer, whether the start request reached the wire, and the error.
func Send(t testing.TB, b backend.Backend, req backend.StartRequest) (*backend.Response, bool, error) {
	t.Helper()
	sender, ok := b.(backend.Sender)
	if !ok {
		t.Fatalf("%T is not a backend.Sender", b)
	}
	ctx, trace := backend.WithWriteTrace(context.Background(), req.Path)
	resp, err := sender.Send(ctx, req)
	return resp, trace.Written(), err
}
