package httpcel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// runningVendor records request lines and bodies, and answers every request Running.
func runningVendor(t *testing.T) (*backendtest.Recorder, *[]string) {
	var bodies []string
	rec := backendtest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(body))
		_, _ = io.WriteString(w, `{"state": "Running"}`)
	})
	return rec, &bodies
}

// httpSpec is an HTTP backend at url with the given path, follow-up path and parameters.
func httpSpec(url, path, followUpPath string, parameters map[string]string) v1alpha1.TaskBackendSpec {
	spec := v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP, URL: url, HTTP: &v1alpha1.HTTPSettings{
		Path: path, Parameters: parameters, Expressions: v1alpha1.HTTPExpressions{Phase: "response.body.state"},
	}}
	if followUpPath != "" {
		spec.HTTP.FollowUp = &v1alpha1.HTTPFollowUp{Path: followUpPath}
	}
	return spec
}

func newHTTPBackend(t *testing.T, spec v1alpha1.TaskBackendSpec) backend.ParameterizedBackend {
	t.Helper()
	b, err := New(backend.Config{Spec: spec, Client: newClient()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b.(backend.ParameterizedBackend)
}

func wantRefused(t *testing.T, err error, prefix string, sent []string) {
	t.Helper()
	e, ok := backend.AsError(err)
	if !ok || e.Kind != backend.KindTerminal || !strings.HasPrefix(e.Message, prefix) || len(sent) != 0 {
		t.Errorf("error %v, sent %q; want a Terminal error starting %q and nothing sent", err, sent, prefix)
	}
}

func TestHostileTaskIDsNeverLeaveTheTaskPath(t *testing.T) {
	rec, _ := runningVendor(t)
	b := newHTTPBackend(t, httpSpec(rec.URL+"/base/", "/v1/{region}/jobs/{taskID}?id={taskID}", "/v1/{region}/jobs/{taskID}/progress",
		map[string]string{"region": "eu-1"}))
	backendtest.ExpectHostileIDsKeptInTheirSegment(t, rec, "taskID",
		func(id string) error { _, err := b.PollWithParameters(context.Background(), id, nil); return err },
		func(h backendtest.HostileTaskID) []string {
			return []string{
				"GET /base/v1/eu-1/jobs/" + h.Segment + "?id=" + url.QueryEscape(h.ID),
				"GET /base/v1/eu-1/jobs/" + h.Segment + "/progress",
			}
		})
}

func TestHostileParameterValuesNeverLeaveTheirSegment(t *testing.T) {
	rec, _ := runningVendor(t)
	b := newHTTPBackend(t, httpSpec(rec.URL, "/v2/{project}/instances/{instance}/tasks/{taskID}", "", map[string]string{"project": "p1"}))
	backendtest.ExpectHostileIDsKeptInTheirSegment(t, rec, "parameter instance",
		func(id string) error {
			_, err := b.PollWithParameters(context.Background(), "t1", map[string]string{"instance": id})
			return err
		},
		func(h backendtest.HostileTaskID) []string {
			return []string{"GET /v2/p1/instances/" + h.Segment + "/tasks/t1"}
		})
}

func TestTaskCannotOverrideTheBackendsParameters(t *testing.T) {
	rec, _ := runningVendor(t)
	b := newHTTPBackend(t, httpSpec(rec.URL, "/v2/{project}/tasks/{taskID}", "", map[string]string{"project": "admin-project"}))
	for name, params := range map[string]map[string]string{
		"another value":          {"project": "victim"},
		"the same value":         {"project": "admin-project"}, // refused too: a task must not learn the backend's values by trying
		"beside one it may fill": {"project": "victim", "zone": "z1"},
	} {
		_, err := b.PollWithParameters(context.Background(), "t1", params)
		e, ok := backend.AsError(err)
		want := "spec.parameters.project is set by the backend (spec.http.parameters); a task may only fill parameters the backend leaves unset"
		if sent := rec.Take(); !ok || e.Kind != backend.KindTerminal || e.Message != want || len(sent) != 0 {
			t.Errorf("%s: error %v, sent %q; want a Terminal %q and nothing sent", name, err, sent, want)
		}
	}

	// A parameter the backend leaves unset is the task's to fill.
	b = newHTTPBackend(t, httpSpec(rec.URL, "/v2/{project}/zones/{zone}/tasks/{taskID}", "", map[string]string{"project": "p1"}))
	if _, err := b.PollWithParameters(context.Background(), "t1", map[string]string{"zone": "z1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Take(), []string{"GET /v2/p1/zones/z1/tasks/t1"}; !cmp.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
}

func TestBodyValuesAreEscapedForTheContentType(t *testing.T) {
	hostile := `x", "admin": true, "y": "&admin=true` + "\n"
	cases := map[string]struct {
		contentType string
		body        string
		want        string
	}{
		"JSON (default)": {body: `{"id": "{taskID}", "zone": "{zone}"}`,
			want: `{"id": "t1", "zone": "x\", \"admin\": true, \"y\": \"\u0026admin=true\n"}`},
		"JSON with a charset": {contentType: "application/json; charset=utf-8", body: `{"zone": "{zone}"}`,
			want: `{"zone": "x\", \"admin\": true, \"y\": \"\u0026admin=true\n"}`},
		"form": {contentType: "application/x-www-form-urlencoded", body: "id={taskID}&zone={zone}",
			want: "id=t1&zone=x%22%2C+%22admin%22%3A+true%2C+%22y%22%3A+%22%26admin%3Dtrue%0A"},
		"form with a charset": {contentType: "application/x-www-form-urlencoded; charset=UTF-8", body: "zone={zone}",
			want: "zone=x%22%2C+%22admin%22%3A+true%2C+%22y%22%3A+%22%26admin%3Dtrue%0A"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec, bodies := runningVendor(t)
			spec := httpSpec(rec.URL, "/tasks", "", nil)
			spec.HTTP.Method, spec.HTTP.Body = v1alpha1.HTTPMethodPost, tc.body
			if tc.contentType != "" {
				spec.HTTP.Headers = map[string]string{"Content-Type": tc.contentType}
			}
			b := newHTTPBackend(t, spec)
			if _, err := b.PollWithParameters(context.Background(), "t1", map[string]string{"zone": hostile}); err != nil {
				t.Fatal(err)
			}
			if got := (*bodies)[0]; got != tc.want {
				t.Errorf("body %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBodyOfAnotherContentTypeMayNotHavePlaceholders(t *testing.T) {
	spec := httpSpec("https://vendor.example", "/tasks", "", nil)
	spec.HTTP.Method, spec.HTTP.Body = v1alpha1.HTTPMethodPost, "<task id='{taskID}'/>"
	spec.HTTP.Headers = map[string]string{"content-type": "application/xml"}
	_, err := New(backend.Config{Spec: spec, Client: newClient()})
	want := `field spec.http.body has placeholders, but its Content-Type "application/xml" is neither JSON nor application/x-www-form-urlencoded, so their values cannot be escaped for it`
	if backend.KindOf(err) != backend.KindInvalidConfig || err.Error() != want {
		t.Errorf("New: %v (%s), want InvalidConfig %q", err, backend.KindOf(err), want)
	}

	// Without placeholders the body is sent as written.
	spec.HTTP.Body = "<tasks/>"
	if _, err := New(backend.Config{Spec: spec, Client: newClient()}); err != nil {
		t.Errorf("New with a literal XML body: %v", err)
	}
}

func TestPathTemplatesMustBeWrittenAsSent(t *testing.T) {
	for _, path := range []string{"/my jobs/{taskID}", "/jobs/{taskID}#x", "/jobs/%zz/{taskID}", "/jobs/{1}/{taskID}"} {
		for _, followUp := range []bool{false, true} {
			spec := httpSpec("https://vendor.example", path, "", nil)
			field := "spec.http.path"
			if followUp {
				spec = httpSpec("https://vendor.example", "/jobs/{taskID}", path, nil)
				field = "spec.http.followUp.path"
			}
			_, err := New(backend.Config{Spec: spec, Client: newClient()})
			if backend.KindOf(err) != backend.KindInvalidConfig || !strings.HasPrefix(err.Error(), "field "+field+" must be written percent-encoded") {
				t.Errorf("%s %q: %v, want InvalidConfig naming the field", field, path, err)
			}
		}
	}
	if _, err := New(backend.Config{Spec: httpSpec("https://vendor.example", "/my%20jobs/a%2Fb/{taskID}?q={taskID}", "", nil), Client: newClient()}); err != nil {
		t.Errorf("an escaped path template: %v", err)
	}
}

// FuzzRequestPathKeepsValuesInTheirSegment checks the HTTP backend's path templates for any task ID and
// parameter value: each is refused with a message that names it, or the request line is the template with
// each value as one segment that unescapes to it.
func FuzzRequestPathKeepsValuesInTheirSegment(f *testing.F) {
	for _, h := range backendtest.HostileTaskIDs {
		f.Add(h.ID, "i1")
		f.Add("t1", h.ID)
	}
	b, err := New(backend.Config{Spec: httpSpec("https://vendor.example/base%2Fdir/", "/v2/{instance}/tasks/{taskID}?id={taskID}", "", nil), Client: newClient()})
	if err != nil {
		f.Fatal(err)
	}
	h := b.(*httpBackend)
	f.Fuzz(func(t *testing.T, taskID, instance string) {
		target, err := h.url(h.settings.Path, taskID, map[string]string{"instance": instance})
		if err != nil {
			e, ok := backend.AsError(err)
			if !ok || e.Kind != backend.KindTerminal ||
				!strings.HasPrefix(e.Message, fmt.Sprintf("parameter instance %q cannot be sent: ", instance)) &&
					!strings.HasPrefix(e.Message, fmt.Sprintf("taskID %q cannot be sent: ", taskID)) {
				t.Fatalf("taskID %q, instance %q: %v, want a Terminal refusal that names one", taskID, instance, err)
			}
			return
		}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, target, nil)
		if err != nil {
			t.Fatalf("building the request for %q: %v", target, err)
		}
		var wire strings.Builder
		if err := req.Write(&wire); err != nil {
			t.Fatal(err)
		}
		line, _, _ := strings.Cut(wire.String(), "\r\n")
		rest, ok := strings.CutPrefix(line, "GET /base%2Fdir/v2/")
		path, query, _ := strings.Cut(strings.TrimSuffix(rest, " HTTP/1.1"), "?")
		gotInstance, gotTaskID, _ := strings.Cut(path, "/tasks/")
		unescapedInstance, err1 := url.PathUnescape(gotInstance)
		unescapedTaskID, err2 := url.PathUnescape(gotTaskID)
		if !ok || strings.Contains(gotInstance, "/") || strings.Contains(gotTaskID, "/") || err1 != nil || err2 != nil ||
			unescapedInstance != instance || unescapedTaskID != taskID || query != "id="+url.QueryEscape(taskID) {
			t.Fatalf("taskID %q, instance %q were sent as %q", taskID, instance, line)
		}
	})
}
