// Package backendtest holds what the tests of the vendor packages share, and is imported by tests only: the
// task IDs a hostile tenant may write, with what must become of each; a fake vendor that records every
// request line exactly as it arrived on the wire; the simulator with the credentials every test uses, and
// the assertion that no message leaks one; the worst bodies a vendor can send and what parsing one may
// cost; the parse benchmark; and the documented example replies kept in testdata.
package backendtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// HostileTaskID is a task ID that tries to leave the task's path, or needs escaping to stay in it.
type HostileTaskID struct {
	ID string
	// Segment is the escaped path segment the ID is sent as; "" when it must be refused with nothing sent.
	Segment string
}

// Refused reports whether the ID must be refused before anything is sent.
func (h HostileTaskID) Refused() bool { return h.Segment == "" }

// HostileTaskIDs are the IDs every backend is tested with. Refused: dot segments, in every spelling a server
// may decode or fold to one, and IDs a server may read as no segment at all. Sent: everything else, as one
// segment whose "/", "?", "#", "%", "\" and non-ASCII bytes are percent-encoded.
var HostileTaskIDs = []HostileTaskID{
	{ID: ""},
	{ID: "."},
	{ID: ".."},
	{ID: "..."},
	{ID: "../../../../../../../v3/users"},
	{ID: "../apps"},
	{ID: "../../../../v3/users"},
	{ID: "a/../b"},
	{ID: "./a"},
	{ID: "%2e%2e"},
	{ID: "%2E"},
	{ID: "%252e%252e"},
	{ID: "..%2f"},
	{ID: "..%2Fapps"},
	{ID: `\..\`},
	{ID: `..\apps`},
	{ID: "..;x"},
	{ID: "/"},
	{ID: "%2F"},
	{ID: `\`},
	{ID: ";"},
	{ID: "\u2024\u2024"},           // one dot leader, twice
	{ID: "\u2025"},                 // two dot leader
	{ID: "\uFE52\uFE52"},           // small full stop
	{ID: "\uFF0E\uFF0E"},           // fullwidth full stop
	{ID: "\uFF0E"},                 // fullwidth full stop
	{ID: "\u3002\u3002"},           // ideographic full stop
	{ID: "\uFF61\uFF61"},           // halfwidth ideographic full stop
	{ID: "\uFF0E\uFF0E\uFF0Fapps"}, // fullwidth dots and solidus
	{ID: "%EF%BC%8E%EF%BC%8E"},     // fullwidth full stops, percent-encoded

	{ID: "?x=1", Segment: "%3Fx=1"},
	{ID: "#frag", Segment: "%23frag"},
	{ID: "%", Segment: "%25"},
	{ID: "100%", Segment: "100%25"},
	{ID: "a/b", Segment: "a%2Fb"},
	{ID: "a%2Fb", Segment: "a%252Fb"},
	{ID: `a\b`, Segment: "a%5Cb"},
	{ID: "semi;colon", Segment: "semi%3Bcolon"},
	{ID: "with space", Segment: "with%20space"},
	{ID: "a\uFF0Eb", Segment: "a%EF%BC%8Eb"},
	{ID: "日本", Segment: "%E6%97%A5%E6%9C%AC"},
	{ID: ".hidden", Segment: ".hidden"},
	{ID: "..a", Segment: "..a"},
	{ID: "a&b=c+d:e@f$", Segment: "a&b=c+d:e@f$"},
	{ID: "d9ce8c9eede54b3f841ec324fe0bfdc2", Segment: "d9ce8c9eede54b3f841ec324fe0bfdc2"},
	{ID: "TASK_PROGRESS_application.APP_BULK_SAVE.1641321499579.0.04202820074723557",
		Segment: "TASK_PROGRESS_application.APP_BULK_SAVE.1641321499579.0.04202820074723557"},
}

// Recorder is a fake vendor: an httptest server that records the request line of every request it gets.
type Recorder struct {
	// URL is the server's base URL.
	URL string

	mu    sync.Mutex
	lines []string
}

// NewRecorder starts a Recorder that answers every request with answer; it stops when the test ends.
func NewRecorder(t *testing.T, answer http.HandlerFunc) *Recorder {
	t.Helper()
	rec := &Recorder{}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		// RequestURI is the request target as the client wrote it: no decoding, no path cleaning.
		rec.lines = append(rec.lines, r.Method+" "+r.RequestURI)
		rec.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(server.Close)
	rec.URL = server.URL
	return rec
}

// Take returns the request lines ("GET /raw/path?query") recorded since the last Take, and forgets them.
func (rec *Recorder) Take() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	lines := rec.lines
	rec.lines = nil
	return lines
}

// ExpectHostileIDsKeptInTheirSegment sends every HostileTaskIDs value through poll to a backend of rec and
// asserts the contract: a refused value fails with a KindTerminal error that names it (name is "taskID", or
// "parameter <name>") and sends nothing; any other is answered without error and sent as exactly the request
// lines want gives for it.
func ExpectHostileIDsKeptInTheirSegment(t testing.TB, rec *Recorder, name string, poll func(id string) error, want func(h HostileTaskID) []string) {
	t.Helper()
	for _, h := range HostileTaskIDs {
		err := poll(h.ID)
		sent := rec.Take()
		if h.Refused() {
			e, ok := backend.AsError(err)
			if !ok || e.Kind != backend.KindTerminal || !strings.HasPrefix(e.Message, fmt.Sprintf("%s %q cannot be sent: ", name, h.ID)) || len(sent) != 0 {
				t.Errorf("%s %q: error %v, sent %q; want a Terminal refusal that names it, and nothing sent", name, h.ID, err, sent)
			}
			continue
		}
		if w := want(h); err != nil || !slices.Equal(sent, w) {
			t.Errorf("%s %q: error %v, sent %q; want no error and %q", name, h.ID, err, sent, w)
		}
	}
}
