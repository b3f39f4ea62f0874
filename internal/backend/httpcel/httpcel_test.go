package httpcel

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// simpleSpec is a backend over a vendor that answers {"state": ..., "pct": ...}.
func simpleSpec(url string, x v1alpha1.HTTPExpressions) v1alpha1.TaskBackendSpec {
	if x.Phase == "" {
		x.Phase = "response.body.state"
	}
	return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP, URL: url, HTTP: &v1alpha1.HTTPSettings{
		Path: "/tasks/{taskID}", Expressions: x,
	}}
}

func TestBadExpressionIsInvalidConfigWithPosition(t *testing.T) {
	cases := map[string]struct {
		x    v1alpha1.HTTPExpressions
		want []string
	}{
		"syntax error": {
			x:    v1alpha1.HTTPExpressions{Phase: "response.body.state ==", Message: ""},
			want: []string{"CEL expression spec.http.expressions.phase is not valid", "line 1, column"},
		},
		"unknown field of response": {
			x:    v1alpha1.HTTPExpressions{Phase: "'Running'", Message: "response.bdy.msg"},
			want: []string{"spec.http.expressions.message", "line 1, column 9", `response has no field "bdy"`},
		},
		"unknown variable on line 2": {
			x:    v1alpha1.HTTPExpressions{Phase: "'Running'", Progress: "1 +\n  respons.body.pct"},
			want: []string{"spec.http.expressions.progress", "line 2, column 3", "undeclared reference to 'respons'"},
		},
		"phase yields an int": {
			x:    v1alpha1.HTTPExpressions{Phase: "response.status + 1"},
			want: []string{"spec.http.expressions.phase must yield a string, but yields int"},
		},
		"progress yields a string": {
			x:    v1alpha1.HTTPExpressions{Phase: "'Running'", Progress: "'half'"},
			want: []string{"spec.http.expressions.progress must yield a number, but yields string"},
		},
		"accept yields a string": {
			x:    v1alpha1.HTTPExpressions{Phase: "'Running'", Accept: "'yes'"},
			want: []string{"spec.http.expressions.accept must yield a bool"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(backend.Config{Spec: simpleSpec("http://vendor.example", tc.x), Client: newClient()})
			if backend.KindOf(err) != backend.KindInvalidConfig || err == nil {
				t.Fatalf("New: %v (%s), want an InvalidConfig error", err, backend.KindOf(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message %q is not one line", err)
			}
		})
	}
}

// vendor answers every task with body, status 200.
func vendor(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestEvaluationErrorsAreClearTransientErrors(t *testing.T) {
	cases := map[string]struct {
		body string
		x    v1alpha1.HTTPExpressions
		want string
	}{
		"phase not a phase word": {
			body: `{"state": "done"}`,
			want: `spec.http.expressions.phase yielded "done"; it must yield one of Pending, Running, Succeeded, Failed`,
		},
		"phase yields a number at run time": {
			body: `{"state": 3}`,
			want: "spec.http.expressions.phase must yield a string, but yielded the double 3",
		},
		"missing key": {
			body: `{"status": "Running"}`,
			want: "spec.http.expressions.phase failed on the vendor's answer: no such key: state",
		},
		"progress not a number": {
			body: `{"state": "Running", "pct": "half"}`,
			x:    v1alpha1.HTTPExpressions{Progress: "response.body.pct"},
			want: `spec.http.expressions.progress must yield a number, but yielded the string "half"`,
		},
		"time not a time": {
			body: `{"state": "Running", "at": "yesterday"}`,
			x:    v1alpha1.HTTPExpressions{StartTime: "response.body.at"},
			want: `spec.http.expressions.startTime yielded "yesterday", which is not an RFC 3339 time`,
		},
		"cost limit": {
			body: `{"state": "Running"}`,
			x:    v1alpha1.HTTPExpressions{Message: "lists.range(1000).all(i, lists.range(1000).all(j, i + j >= 0)) ? 'x' : 'y'"},
			want: "spec.http.expressions.message: evaluation stopped: it exceeded the cost limit",
		},
		"time limit": {
			// A long list, but not from the body, whose decoded size is bounded (maxBodyValues).
			body: `{"state": "Running"}`,
			x:    v1alpha1.HTTPExpressions{Message: "lists.range(200000).all(i, i >= 0) ? 'x' : 'y'"},
			want: "spec.http.expressions.message: evaluation stopped: it ran longer than 1s",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if name == "cost limit" {
				// Only the cost limit may stop this one, however slow the machine.
				defer func(saved time.Duration) { evalTimeout = saved }(evalTimeout)
				evalTimeout = time.Minute
			}
			b, err := New(backend.Config{Spec: simpleSpec(vendor(t, tc.body), tc.x), Client: newClient()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Poll(context.Background(), "t1")
			if err == nil || backend.KindOf(err) != backend.KindTransient || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Poll error %v (%s), want a Transient error containing %q", err, backend.KindOf(err), tc.want)
			}
		})
	}
}

// recorder is a vendor that records the requests it gets and answers Running.
type recorder struct {
	requests []*http.Request
	bodies   []string
}

func (rec *recorder) server(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.requests = append(rec.requests, r)
		rec.bodies = append(rec.bodies, string(body))
		_, _ = io.WriteString(w, `{"state": "Running", "pct": 42.9, "at": 1700000000, "result": {"b": [1, 2], "a": null}}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRequestTemplatesParametersAndCredentials(t *testing.T) {
	rec := &recorder{}
	url := rec.server(t)
	spec := v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP, URL: url + "/base/", HTTP: &v1alpha1.HTTPSettings{
		Path:       "/v1/{region}/jobs/{taskID}?verbose={verbose}",
		Method:     v1alpha1.HTTPMethodPost,
		Body:       `{"id": "{taskID}", "region": "{region}"}`,
		Headers:    map[string]string{"X-Tenant": "acme"},
		Parameters: map[string]string{"verbose": "a b&c"}, // region is the task's to fill
		Expressions: v1alpha1.HTTPExpressions{
			Phase: "response.body.state", Progress: "response.body.pct", StartTime: "response.body.at",
			Result: "response.body.result", TaskName: "task.parameters.region + '/' + task.id",
		},
	}}
	b, err := New(backend.Config{Spec: spec, Client: newClient(), Credentials: creds("headerName", "X-Api-Key", "headerValue", "k3y")})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := b.(backend.ParameterizedBackend).PollWithParameters(context.Background(), `a/"b"`, map[string]string{"region": "us-1"})
	if err != nil {
		t.Fatal(err)
	}
	req := rec.requests[0]
	if got, want := req.URL.EscapedPath(), "/base/v1/us-1/jobs/a%2F%22b%22"; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
	if got, want := req.URL.RawQuery, "verbose=a+b%26c"; got != want {
		t.Errorf("query %q, want %q", got, want)
	}
	if got, want := rec.bodies[0], `{"id": "a/\"b\"", "region": "us-1"}`; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	if req.Method != http.MethodPost || req.Header.Get("X-Tenant") != "acme" || req.Header.Get("X-Api-Key") != "k3y" {
		t.Errorf("request %s with headers %v", req.Method, req.Header)
	}
	if obs.Phase != v1alpha1.TaskPhaseRunning || obs.Progress == nil || *obs.Progress != 42 || obs.TaskName != `us-1/a/"b"` ||
		obs.StartTime == nil || !obs.StartTime.Equal(time.Unix(1700000000, 0)) || string(obs.Result) != `{"a":null,"b":[1,2]}` {
		t.Errorf("observation %+v (result %s)", obs, obs.Result)
	}

	// A placeholder without a value fails the task with a message that says where to set it.
	spec.HTTP.Parameters = nil
	b, _ = New(backend.Config{Spec: spec, Client: newClient(), Credentials: creds("token", "t0k")})
	_, err = b.Poll(context.Background(), "1")
	if backend.KindOf(err) != backend.KindTerminal || !strings.Contains(err.Error(), "placeholder {region} has no value") {
		t.Errorf("Poll without parameters: %v (%s)", err, backend.KindOf(err))
	}
}

func TestAuthMethodsFromSecretKeys(t *testing.T) {
	cases := map[string]struct {
		creds backend.Credentials
		auth  *v1alpha1.HTTPAuth
		want  map[string]string
	}{
		"bearer":          {creds: creds("token", "t0k"), want: map[string]string{"Authorization": "Bearer t0k"}},
		"basic":           {creds: creds("username", "u", "password", "p"), want: map[string]string{"Authorization": "Basic dTpw"}},
		"header":          {creds: creds("headerName", "X-Key", "headerValue", "v"), want: map[string]string{"X-Key": "v"}},
		"token formatted": {creds: creds("token", "t0k"), auth: &v1alpha1.HTTPAuth{TokenHeader: "X-Auth-Token", TokenFormat: "{token}"}, want: map[string]string{"X-Auth-Token": "t0k"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			spec := simpleSpec(rec.server(t), v1alpha1.HTTPExpressions{})
			spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "s"}
			spec.HTTP.Auth = tc.auth
			b, err := New(backend.Config{Spec: spec, Client: newClient(), Credentials: tc.creds})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got := rec.requests[0].Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
	spec := simpleSpec("http://vendor.example", v1alpha1.HTTPExpressions{})
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "s"}
	_, err := New(backend.Config{Spec: spec, Client: newClient(), Credentials: creds("other", "x")})
	if backend.KindOf(err) != backend.KindInvalidConfig || !strings.Contains(err.Error(), "token, or username + password, or headerName + headerValue") {
		t.Errorf("New with no credential set: %v", err)
	}
}

func TestLoginErrorsNeverShowCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// A vendor that echoes the login body in its refusal.
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad login " + string(body)})
	}))
	defer srv.Close()
	spec := simpleSpec(srv.URL, v1alpha1.HTTPExpressions{})
	spec.HTTP.Auth = &v1alpha1.HTTPAuth{Login: &v1alpha1.HTTPLogin{
		Path: "/login", Body: "{'user': credentials.username, 'pass': credentials.password}", Token: "response.body.token",
	}}
	b, err := New(backend.Config{Spec: spec, Client: newClient(), Credentials: creds("username", "alice", "password", "s3cr3t-pw")})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Check(context.Background())
	if backend.KindOf(err) != backend.KindAuthentication || strings.Contains(err.Error(), "s3cr3t-pw") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("Check: %v (%s)", err, backend.KindOf(err))
	}

	// A login body that fails to evaluate names the problem, not the values.
	spec.HTTP.Auth.Login.Body = "{'n': int(credentials.password)}"
	_, err = New(backend.Config{Spec: spec, Client: newClient(), Credentials: creds("username", "alice", "password", "s3cr3t-pw")})
	if backend.KindOf(err) != backend.KindInvalidConfig || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("New with a failing login body: %v (%s)", err, backend.KindOf(err))
	}
}

func TestLoginRefusalNeverQuotesPartOfACredential(t *testing.T) {
	for name, password := range map[string]string{
		"cut by the quote":    "s3cr3t-pw",
		"folded by the quote": "s3cr3t  \n pw",
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// A vendor that echoes the password where the quote of its answer ends.
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, strings.Repeat("x", backend.SnippetLength-4)+password+" is wrong")
			}))
			defer srv.Close()
			spec := simpleSpec(srv.URL, v1alpha1.HTTPExpressions{})
			spec.HTTP.Auth = &v1alpha1.HTTPAuth{Login: &v1alpha1.HTTPLogin{
				Path: "/login", Body: "{'user': credentials.username, 'pass': credentials.password}", Token: "response.body.token",
			}}
			b, err := New(backend.Config{Spec: spec, Client: newClient(), Credentials: creds("username", "alice", "password", password)})
			if err != nil {
				t.Fatal(err)
			}
			err = b.Check(context.Background())
			if backend.KindOf(err) != backend.KindAuthentication || strings.Contains(err.Error(), "s3c") || !strings.Contains(err.Error(), "xxx[re") {
				t.Errorf("Check: %v (%s); want the password blanked out before the quote is cut", err, backend.KindOf(err))
			}
		})
	}
}

// FuzzAnswerToObservation feeds arbitrary vendor answers through the response-to-activation path and every
// sample's expressions: nothing may panic, and every failure is a classified error.
func FuzzAnswerToObservation(f *testing.F) {
	f.Add(200, []byte(`{"task_id":"1","task_status":"succeed","task_type":"import_api","task_result":"{\"success\":[]}"}`))
	f.Add(200, []byte(`{"request_id":"r","status":"FINISHED","progress":100,"start_time":1.641321499579E12,"app_save_response":[{"responseCode":"ERROR"}]}`))
	f.Add(200, []byte(`{"response":{"id":1,"status":"PENDING","start_time":"2024-01-01T00:00:00Z","end_time":null,"message":"x"}}`))
	f.Add(202, []byte(`{}`))
	f.Add(503, []byte(`{"error":{"code":"SYS.1000","description":"d","details":"x","cause":{"code":"C"}}}`))
	f.Add(200, []byte(`{"inventories":[{"type":"Progress","content":"4e1","time":1.5E12}]}`))
	f.Add(404, []byte("the job has been expired"))
	f.Add(200, []byte(`[1, "x", null, {"a": [[[[]]]]}]`))
	var backends []*httpBackend
	for _, vc := range vendorCases {
		spec := loadSample(f, vc.sample)
		spec.URL = "http://vendor.example"
		b, err := New(backend.Config{Spec: spec, Client: newClient(), Credentials: creds("token", "t", "username", "u", "password", "p")})
		if err != nil {
			f.Fatal(err)
		}
		backends = append(backends, b.(*httpBackend))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		resp := &backend.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}, "Set-Cookie": {string(body[:min(len(body), 64)])}}, Body: body}
		for _, h := range backends {
			vars := answerVars(resp, resp, "id", map[string]string{"p": "v"})
			ok, err := h.accept.evalBool(context.Background(), vars, true)
			if err != nil {
				if _, classified := backend.AsError(err); !classified {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			if !ok {
				_ = h.refusal(context.Background(), resp, vars, "accept")
				continue
			}
			if _, err := h.observe(context.Background(), vars); err != nil {
				if _, classified := backend.AsError(err); !classified {
					t.Fatalf("unclassified error %v", err)
				}
			}
		}
	})
}
