package operation

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// answer is a vendor's answer with a JSON body and headers (name, value pairs).
func answer(status int, body string, headers ...string) *backend.Response {
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Add(headers[i], headers[i+1])
	}
	return &backend.Response{StatusCode: status, Header: h, Body: []byte(body)}
}

const zstackKey = "2e1b6f9a8d3c4e5fa6b7c8d9e0f1a2b3"

func TestAnswerReadsEachVendorsDocumentedAnswer(t *testing.T) {
	cases := map[string]struct {
		spec v1alpha1.TaskBackendSpec
		resp *backend.Response
		want Answer
	}{
		"API Gateway: 202 with the task ID": {
			spec: backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "import", Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import"}),
			resp: answer(202, `{"task_id": "d9ce8c9eede54b3f841ec324fe0bfdc2"}`),
			want: Answer{Accepted: true, TaskID: "d9ce8c9eede54b3f841ec324fe0bfdc2"},
		},
		"Network Insight: 200 with the request ID": {
			spec: backendSpec(v1alpha1.BackendTypeNetworkInsight, v1alpha1.Operation{Name: "save", Path: "/api/ni/groups/discovered-applications/save"}),
			resp: answer(200, `{"request_id": "TASK_PROGRESS_application.APP_BULK_SAVE.1a2b", "callback_API": "api/ni/groups/task/progress/TASK_PROGRESS_application.APP_BULK_SAVE.1a2b/"}`),
			want: Answer{Accepted: true, TaskID: "TASK_PROGRESS_application.APP_BULK_SAVE.1a2b"},
		},
		"ZStack: 202 with the job's location; the ID is the UUID sent": {
			spec: backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances"}),
			resp: answer(202, `{"location": "https://zstack.example/zstack/v1/api-jobs/`+zstackKey+`", "apiTimeout": 1800000}`),
			want: Answer{Accepted: true, TaskID: zstackKey},
		},
		"ZStack: the ID read from the location instead": {
			spec: backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances",
				TaskID: "regex.extract(response.body.location, '/api-jobs/([0-9a-f]{32})$').orValue('')"}),
			resp: answer(202, `{"location": "https://zstack.example/zstack/v1/api-jobs/0123456789abcdef0123456789abcdef"}`),
			want: Answer{Accepted: true, TaskID: "0123456789abcdef0123456789abcdef"},
		},
		"Traffic Ops: 202 with the Location header": {
			spec: backendSpec(v1alpha1.BackendTypeTrafficOps, v1alpha1.Operation{Name: "renew", Path: "/api/{apiVersion}/acme_autorenew",
				TaskID: "regex.extract(response.headers['location'], '/async_status/([0-9]+)').orValue('')"}),
			resp: answer(202, `{"alerts": [{"text": "ACME renewal started", "level": "success"}]}`, "Location", "/api/5.0/async_status/42"),
			want: Answer{Accepted: true, TaskID: "42"},
		},
		"Traffic Ops: the ID in an alert's text": {
			spec: backendSpec(v1alpha1.BackendTypeTrafficOps, v1alpha1.Operation{Name: "renew", Path: "/api/{apiVersion}/acme_autorenew",
				TaskID: "response.body.alerts.map(a, regex.extract(a.text, 'async_status/([0-9]+)')).filter(id, id.hasValue())[0].value()"}),
			resp: answer(202, `{"alerts": [{"text": "Starting", "level": "info"}, {"text": "Status at /api/5.0/async_status/43", "level": "success"}]}`),
			want: Answer{Accepted: true, TaskID: "43"},
		},
		"Traffic Ops: an integer ID in the body": {
			spec: backendSpec(v1alpha1.BackendTypeTrafficOps, v1alpha1.Operation{Name: "renew", Path: "/api/{apiVersion}/acme_autorenew",
				TaskID: "response.body.response.id"}),
			resp: answer(202, `{"response": {"id": 44}}`),
			want: Answer{Accepted: true, TaskID: "44"},
		},
		"HTTP: a generic ID": {
			spec: backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id"}),
			resp: answer(201, `{"id":"abc"}`),
			want: Answer{Accepted: true, TaskID: "abc"},
		},
		"HTTP: the key sent, echoed": {
			spec: backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", IdempotencyKeyHeader: "Idempotency-Key",
				Accepted: "response.status == 202 || response.status == 200 && response.body.key == key", TaskID: "'job-' + key"}),
			resp: answer(200, `{"key":"`+zstackKey+`"}`),
			want: Answer{Accepted: true, TaskID: "job-" + zstackKey},
		},
		"HTTP: a cookie": {
			spec: backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.cookies.job"}),
			resp: answer(202, ``, "Set-Cookie", "job=j-7; Path=/"),
			want: Answer{Accepted: true, TaskID: "j-7"},
		},
		"API Gateway: accepted, but no task ID": {
			spec: backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "import", Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import"}),
			resp: answer(202, `{}`),
			want: Answer{Accepted: true, Problem: "CEL expression spec.operations[0].taskID (default response.body.task_id) failed on the vendor's answer: no such key: task_id"},
		},
		"API Gateway: refused": {
			spec: backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "import", Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import"}),
			resp: answer(400, `{"error_code": "APIG.2001", "error_msg": "The request parameters must be specified"}`),
			want: Answer{},
		},
		"ZStack: refused": {
			spec: backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances"}),
			resp: answer(503, `{"error": {"code": "SYS.1000"}}`),
			want: Answer{},
		},
		"HTTP: a 200 the accepted condition refuses": {
			spec: backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
				Accepted: "response.status == 202 && response.body.?state.orValue('') == 'queued'"}),
			resp: answer(200, `{"id": "abc", "state": "rejected"}`),
			want: Answer{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			op := onlyOperation(t, tc.spec)
			got, err := op.Answer(context.Background(), tc.resp, zstackKey)
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnswerWithAnUnreadableIDSaysWhy(t *testing.T) {
	const prefix = "CEL expression spec.operations[0].taskID "
	cases := map[string]struct {
		taskID string
		body   string
		want   string
	}{
		"empty":               {taskID: "response.body.id", body: `{"id": ""}`, want: prefix + "yielded an empty ID"},
		"a dot segment":       {taskID: "response.body.id", body: `{"id": ".."}`, want: prefix + `yielded the ID "..", which no path can carry`},
		"a dot":               {taskID: "response.body.id", body: `{"id": "."}`, want: prefix + `yielded the ID ".", which no path can carry`},
		"a control character": {taskID: "response.body.id", body: `{"id": "a\nb"}`, want: prefix + `yielded the ID "a\nb", which holds a control character`},
		"too long":            {taskID: "response.body.id", body: `{"id": "` + strings.Repeat("é", 257) + `"}`, want: prefix + "yielded an ID longer than 256 characters"},
		"null":                {taskID: "response.body.id", body: `{"id": null}`, want: prefix + "yielded null"},
		"an empty optional":   {taskID: "response.body.?id", body: `{}`, want: prefix + "yielded null"},
		"a map":               {taskID: "response.body.id", body: `{"id": {"value": "x"}}`, want: prefix + "must yield a string or a number, but yielded a map"},
		"a fraction":          {taskID: "response.body.id", body: `{"id": 1.5}`, want: prefix + "yielded the double 1.5, which is not a whole number"},
		"an inexact integer": {taskID: "response.body.id", body: `{"id": 12345678901234567890}`,
			want: prefix + "yielded the number 1.2345678901234567e+19, too large to be read exactly from JSON: read it from response.text, e.g. with regex.extract"},
		"a body over the shape limits": {taskID: "response.body.id", body: `{"id": "a", "deep": ` + string(backendtest.DeepNesting(200)) + `}`,
			want: prefix + "failed on the vendor's answer: no such key: id (the answer's body is JSON nested deeper than 64 levels, more than the HTTP backend decodes, so the expressions see it as null)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: tc.taskID}))
			got, err := op.Answer(context.Background(), answer(202, tc.body), "k")
			if err != nil {
				t.Fatalf("Answer: %v", err)
			}
			if diff := cmp.Diff(Answer{Accepted: true, Problem: tc.want}, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnswerWhoseConditionCannotBeEvaluatedIsAnError(t *testing.T) {
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
		Accepted: "response.body.accepted"}))
	_, err := op.Answer(context.Background(), answer(502, `<html>Bad Gateway</html>`), "k")
	want := "CEL expression spec.operations[0].accepted failed on the vendor's answer: "
	if err == nil || backend.KindOf(err) != backend.KindTransient || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Answer: %v, want a Transient error starting %q", err, want)
	}
}

func TestAnswerDoesNotKeepTheBody(t *testing.T) {
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id"}))
	resp := answer(202, `{"id":"abc"}`)
	got, err := op.Answer(context.Background(), resp, "k")
	if err != nil {
		t.Fatal(err)
	}
	copy(resp.Body, `{"id":"xyz"}`)
	if got.TaskID != "abc" {
		t.Errorf("the task ID changed with the body: %q", got.TaskID)
	}
}

// TestRegexConstantsBehaveAsTheExtension compares regex.extract and regex.extractAll with a constant
// pattern (compiled once, regexConstants) with the same calls whose pattern is not a constant (cel-go's own
// implementation).
func TestRegexConstantsBehaveAsTheExtension(t *testing.T) {
	patterns := []string{`/async_status/([0-9]+)`, `[0-9]+`, `(x?)`, `a(b)?c`, `^$`, `(?i)ID=([a-z]+)`}
	targets := []string{"", "/api/5.0/async_status/42", "1 22 333", "ac abc", "x", "id=abc ID=Def", "日本/async_status/7"}
	for _, pattern := range patterns {
		for _, fn := range []string{"regex.extract", "regex.extractAll"} {
			constant := fmt.Sprintf("string(%s(response.text, %q))", fn, pattern)
			variable := fmt.Sprintf("string(%s(response.text, key))", fn)
			if fn == "regex.extract" {
				constant = fmt.Sprintf("%s(response.text, %q).orValue('<none>')", fn, pattern)
				variable = fmt.Sprintf("%s(response.text, key).orValue('<none>')", fn)
			}
			if fn == "regex.extractAll" {
				constant = fmt.Sprintf("%s(response.text, %q).join('|') + '<end>'", fn, pattern)
				variable = fmt.Sprintf("%s(response.text, key).join('|') + '<end>'", fn)
			}
			opConstant := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "c", Path: "/jobs", TaskID: constant}))
			opVariable := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "v", Path: "/jobs", TaskID: variable}))
			for _, target := range targets {
				resp := &backend.Response{StatusCode: 202, Body: []byte(target)}
				want, err := opVariable.Answer(context.Background(), resp, pattern)
				if err != nil {
					t.Fatal(err)
				}
				got, err := opConstant.Answer(context.Background(), resp, pattern)
				if err != nil {
					t.Fatal(err)
				}
				want.Problem = strings.ReplaceAll(want.Problem, variable, constant)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s(%q, %q) (-extension +constant):\n%s", fn, target, pattern, diff)
				}
			}
		}
	}
}
