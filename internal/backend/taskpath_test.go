package backend_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// taskBase and taskPrefix are a base URL whose path needs escaping itself, and the request path of its task
// collection under the fixed segments "v2", "p 1", "tasks".
const (
	taskBase   = "http://vendor.example/base%2Fdir/"
	taskPrefix = "/base%2Fdir/v2/p%201/tasks/"
)

func TestPathSegmentRefusesOrSendsEveryHostileIDAsOneSegment(t *testing.T) {
	for _, h := range backendtest.HostileTaskIDs {
		t.Run(fmt.Sprintf("%q", h.ID), func(t *testing.T) {
			segment, err := backend.PathSegment("taskID", h.ID)
			if h.Refused() {
				wantRefusal(t, err, h.ID)
				return
			}
			if err != nil || segment != h.Segment {
				t.Fatalf("PathSegment = %q, %v; want %q", segment, err, h.Segment)
			}
		})
	}
}

func TestTaskURLGoesOnTheWireAsBuilt(t *testing.T) {
	rec := backendtest.NewRecorder(t, func(http.ResponseWriter, *http.Request) {})
	base, err := url.Parse(rec.URL + "/base%2Fdir/")
	if err != nil {
		t.Fatal(err)
	}
	client := backend.NewClient(backend.ClientOptions{Timeout: 5 * time.Second, QPS: 1000, Burst: 1000})
	for _, h := range backendtest.HostileTaskIDs {
		u, err := backend.TaskURL(base, h.ID, "v2", "p 1", "tasks")
		if h.Refused() {
			wantRefusal(t, err, h.ID)
			continue
		}
		if err != nil {
			t.Fatalf("backend.TaskURL(%q): %v", h.ID, err)
		}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Do(context.Background(), req); err != nil {
			t.Fatalf("%q: %v", h.ID, err)
		}
		if got, want := rec.Take(), []string{"GET " + taskPrefix + h.Segment}; !equal(got, want) {
			t.Errorf("%q was sent as %q, want %q", h.ID, got, want)
		}
	}
	if got := rec.Take(); len(got) != 0 {
		t.Errorf("refused IDs were sent: %q", got)
	}
}

// FuzzTaskURL checks the contract for any ID: it is refused with a message that names it, or the request line
// is the task collection's path and one segment that unescapes to the ID; and a server that decodes that path
// once, folds it by NFKC and cleans it still finds a task inside the collection.
func FuzzTaskURL(f *testing.F) {
	for _, h := range backendtest.HostileTaskIDs {
		f.Add(h.ID)
	}
	base, err := url.Parse(taskBase)
	if err != nil {
		f.Fatal(err)
	}
	decodedPrefix, _ := url.PathUnescape(taskPrefix)
	f.Fuzz(func(t *testing.T, id string) {
		u, err := backend.TaskURL(base, id, "v2", "p 1", "tasks")
		if err != nil {
			wantRefusal(t, err, id)
			return
		}
		target := requestTarget(t, u)
		segment, ok := strings.CutPrefix(target, taskPrefix)
		if !ok || strings.ContainsAny(segment, "/?#") {
			t.Fatalf("ID %q was sent as %q: not %s and one segment", id, target, taskPrefix)
		}
		if unescaped, err := url.PathUnescape(segment); err != nil || unescaped != id {
			t.Fatalf("ID %q was sent as the segment %q, which unescapes to %q (%v)", id, segment, unescaped, err)
		}
		decoded, err := url.PathUnescape(target)
		if err != nil {
			t.Fatal(err)
		}
		cleaned := path.Clean(strings.ReplaceAll(norm.NFKC.String(decoded), `\`, "/"))
		if !strings.HasPrefix(cleaned, decodedPrefix) || len(cleaned) == len(decodedPrefix) {
			t.Fatalf("ID %q was sent as %q, which a decoding server cleans to %q, outside %s", id, target, cleaned, decodedPrefix)
		}
	})
}

// requestTarget writes the request for u as the client sends it and returns the target of its request line.
func requestTarget(t *testing.T, u *url.URL) string {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatalf("building the request for %s: %v", u, err)
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(&wire).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	method, rest, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
	target, proto, _ := strings.Cut(rest, " ")
	if method != http.MethodGet || proto != "HTTP/1.1" {
		t.Fatalf("request line %q", line)
	}
	return target
}

func wantRefusal(t *testing.T, err error, id string) {
	t.Helper()
	e, ok := backend.AsError(err)
	if !ok || e.Kind != backend.KindTerminal || !strings.HasPrefix(e.Message, fmt.Sprintf("taskID %q cannot be sent: ", id)) {
		t.Fatalf("ID %q: got %v, want a Terminal refusal that names it", id, err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
