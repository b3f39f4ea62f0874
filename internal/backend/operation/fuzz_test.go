package operation

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// fuzzBodies are the body expressions FuzzRequestBody tries each task body with.
var fuzzBodies = []string{
	"task.body",
	"{'data': task.body, 'name': task.name}",
	"{'file': {'filename': task.name, 'content': string(task.body)}, 'name': task.name}",
	"[task.body, task.body]",
}

var fuzzContentTypes = []v1alpha1.SubmitContentType{v1alpha1.ContentTypeJSON, v1alpha1.ContentTypeForm, v1alpha1.ContentTypeMultipart}

// FuzzRequestBody builds start requests of arbitrary task bodies (JSON, or text as bodyFrom gives it) with
// each content type: Request never panics, the body stays within MaxEncodedBody, a JSON body is JSON that
// decodes to what it encoded, a form parses back, and a multipart body parses back with its fields.
func FuzzRequestBody(f *testing.F) {
	for _, seed := range []string{
		`{"name": "petstore", "replicas": 3, "tags": ["a", "b"], "nested": {"z": null}}`,
		`{"swagger": "openapi: 3.0.0\r\n--x\r\n", "is_create_group": true, "group_id": "g1"}`,
		`{"file": {"filename": "a.yaml", "content": "x: 1"}, "files": [{"filename": "b", "content": "y"}, "text"]}`,
		`{"a": 1e300, "b": -0.0, "c": 5e-324, "d": "\u2028<&>\ud800"}`,
		`[1, "two", [3]]`,
		`"a plain string"`,
		`not JSON at all`,
		`{"": "no name", "a\nb": "line break"}`,
		`{"file": {"filename": "a\"b\\c.txt", "content": "x", "contentType": "text/plain; charset=utf-8"}}`,
	} {
		for sel := range len(fuzzBodies) * len(fuzzContentTypes) {
			f.Add([]byte(seed), "import-petstore", uint8(sel))
		}
	}
	ops := make([]*Operation, 0, len(fuzzBodies)*len(fuzzContentTypes))
	for _, body := range fuzzBodies {
		for _, ct := range fuzzContentTypes {
			ops = append(ops, onlyOperation(f, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
				ContentType: ct, Body: body})))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, name string, sel uint8) {
		op := ops[int(sel)%len(ops)]
		sendsTaskBody := int(sel)%len(ops)/len(fuzzContentTypes) == 0 // the expression is task.body
		var body any
		if json.Unmarshal(raw, &body) != nil {
			body = string(raw)
		}
		req, err := op.Request(context.Background(), Task{Body: body, Name: name, Namespace: "apps", UID: "u"}, "")
		if err != nil {
			if backend.KindOf(err) != backend.KindTerminal {
				t.Fatalf("Request failed with a %s error: %v", backend.KindOf(err), err)
			}
			return
		}
		if len(req.Body) > MaxEncodedBody {
			t.Fatalf("a body of %d bytes", len(req.Body))
		}
		if _, isString := body.(string); isString && sendsTaskBody {
			if string(req.Body) != body {
				t.Fatalf("the string body was not sent as it is")
			}
			return
		}
		switch op.contentType {
		case v1alpha1.ContentTypeJSON:
			var back any
			if err := json.Unmarshal(req.Body, &back); err != nil {
				t.Fatalf("the JSON body is not JSON: %v\n%s", err, req.Body)
			}
			if sendsTaskBody && !reflect.DeepEqual(back, body) {
				t.Fatalf("the JSON body decodes to %#v, not the task's body %#v", back, body)
			}
		case v1alpha1.ContentTypeForm:
			values, err := url.ParseQuery(string(req.Body))
			if err != nil {
				t.Fatalf("the form does not parse: %v\n%s", err, req.Body)
			}
			for k, v := range formStrings(body, sendsTaskBody) {
				if got := values.Get(k); got != v {
					t.Fatalf("form field %q is %q, want %q", k, got, v)
				}
			}
		case v1alpha1.ContentTypeMultipart:
			parts := readMultipart(t, req.Header.Get("Content-Type"), req.Body)
			got := map[string]string{}
			for _, p := range parts {
				if p.FileName == "" {
					got[p.Name] = p.Content
				}
			}
			for k, v := range formStrings(body, sendsTaskBody) {
				if got[k] != v {
					t.Fatalf("multipart field %q is %q, want %q", k, got[k], v)
				}
			}
		}
	})
}

// formStrings are the string fields of a task body that the body expression task.body (sent) sends as form
// fields.
func formStrings(body any, sent bool) map[string]string {
	m, _ := body.(map[string]any)
	if !sent {
		m = nil
	}
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// fuzzAnswerOperations read answers as each vendor's documented default, and as typical expressions do.
var fuzzAnswerOperations = []v1alpha1.TaskBackendSpec{
	backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "import", Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import"}),
	backendSpec(v1alpha1.BackendTypeNetworkInsight, v1alpha1.Operation{Name: "save", Path: "/api/ni/groups/discovered-applications/save"}),
	backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances"}),
	backendSpec(v1alpha1.BackendTypeTrafficOps, v1alpha1.Operation{Name: "renew", Path: "/api/{apiVersion}/acme_autorenew",
		TaskID: "regex.extract(response.headers.?location.orValue(''), '/async_status/([0-9]+)').orValue(response.text)"}),
	backendSpec(v1alpha1.BackendTypeTrafficOps, v1alpha1.Operation{Name: "renew", Path: "/api/{apiVersion}/acme_autorenew",
		TaskID: "regex.extractAll(response.text, '[0-9]+').join('/')"}),
	backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", Accepted: "response.status < 300 || has(response.body.id)",
		TaskID: "response.body.id"}),
	backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.cookies.?job.orValue(response.text)"}),
}

// FuzzAnswer reads arbitrary answers to start requests: Answer never panics, and a task ID it gives always
// passes the readability rules.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []struct {
		status                      int
		body, location, cookie, key string
	}{
		{202, `{"task_id": "d9ce8c9eede54b3f841ec324fe0bfdc2"}`, "", "", "k"},
		{200, `{"request_id": "TASK_PROGRESS_application.APP_BULK_SAVE.1a2b", "callback_API": "api/ni/groups/task/progress/x/"}`, "", "", "k"},
		{202, `{"location": "https://zstack.example/zstack/v1/api-jobs/2e1b6f9a8d3c4e5fa6b7c8d9e0f1a2b3"}`, "", "", zstackKey},
		{202, `{"alerts": [{"text": "started", "level": "success"}]}`, "/api/5.0/async_status/42", "", "k"},
		{201, `{"id": 44}`, "", "job=j-7", "k"},
		{202, `{"id": ".."}`, "/async_status/..", "job=..", ".."},
		{202, `{"id": 1.5e300}`, "", "", ""},
		{202, "\x00\xff", "\r\n", "job=\x01", "\x7f"},
		{400, `{"error_code": "APIG.2001"}`, "", "", "k"},
	} {
		for sel := range fuzzAnswerOperations {
			f.Add(seed.status, []byte(seed.body), seed.location, seed.cookie, seed.key, uint8(sel))
		}
	}
	ops := make([]*Operation, len(fuzzAnswerOperations))
	for i, spec := range fuzzAnswerOperations {
		ops[i] = onlyOperation(f, spec)
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, location, cookie, key string, sel uint8) {
		op := ops[int(sel)%len(ops)]
		resp := &backend.Response{StatusCode: status, Header: http.Header{"Location": {location}, "Set-Cookie": {cookie}}, Body: body}
		got, err := op.Answer(context.Background(), resp, key)
		if err != nil {
			if backend.KindOf(err) != backend.KindTransient {
				t.Fatalf("Answer failed with a %s error: %v", backend.KindOf(err), err)
			}
			return
		}
		switch {
		case !got.Accepted && (got.TaskID != "" || got.Problem != ""):
			t.Fatalf("an answer not accepted gave %+v", got)
		case got.Accepted && (got.TaskID == "") == (got.Problem == ""):
			t.Fatalf("an accepted answer must give an ID or a problem, not %+v", got)
		case got.TaskID != "" && unreadable(got.TaskID) != "":
			t.Fatalf("an unreadable task ID: %q", got.TaskID)
		case utf8.RuneCountInString(got.TaskID) > MaxTaskIDLength || got.TaskID == "." || got.TaskID == "..":
			t.Fatalf("task ID %q breaks the rules", got.TaskID)
		case !utf8.ValidString(got.Problem) && got.Problem != "":
			// Problems go into a status message, which OneLine cleans; they must still be text.
			t.Fatalf("problem %q is not UTF-8", got.Problem)
		}
	})
}
