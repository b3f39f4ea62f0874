package operation

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// backendSpec is a backend of type t with ops, and the settings its type needs.
func backendSpec(t v1alpha1.BackendType, ops ...v1alpha1.Operation) v1alpha1.TaskBackendSpec {
	spec := v1alpha1.TaskBackendSpec{Type: t, URL: "https://vendor.example", Operations: ops}
	switch t {
	case v1alpha1.BackendTypeAPIGateway:
		spec.APIGateway = &v1alpha1.APIGatewaySettings{ProjectID: "0605767a3300d5762fb7c0186d9e1779", InstanceID: "eddc4d25480b4cd6b512f270a1b8b341"}
	case v1alpha1.BackendTypeHTTP:
		spec.HTTP = &v1alpha1.HTTPSettings{Path: "/jobs/{taskID}", Parameters: map[string]string{"region": "eu-1"},
			Expressions: v1alpha1.HTTPExpressions{Phase: "'Running'"}}
	}
	return spec
}

// onlyOperation compiles spec and returns its one operation.
func onlyOperation(t testing.TB, spec v1alpha1.TaskBackendSpec) *Operation {
	t.Helper()
	ops, err := Compile(spec)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if len(ops) != 1 {
		t.Fatalf("Compile gave %d operations, want 1", len(ops))
	}
	for _, op := range ops {
		return op
	}
	return nil
}

func TestCompileRefusesAMistakeNamingItsField(t *testing.T) {
	ok := v1alpha1.Operation{Name: "first", Path: "/jobs", TaskID: "response.body.id"}
	cases := map[string]struct {
		backendType v1alpha1.BackendType
		op          v1alpha1.Operation
		want        string
	}{
		"accepted does not parse": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Accepted: "response.status >"},
			want: "CEL expression spec.operations[1].accepted is not valid: line 1, column 18: Syntax error: mismatched input '<EOF>' expecting",
		},
		"accepted selects a field the response does not have": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Accepted: "response.stauts == 202"},
			want: `CEL expression spec.operations[1].accepted is not valid: line 1, column 9: response has no field "stauts" (it has status, headers, cookies, body, text)`,
		},
		"accepted yields an int": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Accepted: "size(response.text)"},
			want: "CEL expression spec.operations[1].accepted must yield a bool, but yields int",
		},
		"accepted yields a string": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Accepted: "'yes'"},
			want: "CEL expression spec.operations[1].accepted must yield a bool, but yields string",
		},
		"taskID yields a bool": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.status == 202"},
			want: "CEL expression spec.operations[1].taskID must yield a string or a number, but yields bool",
		},
		"taskID names a variable the answer has not": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "task.uid"},
			want: "CEL expression spec.operations[1].taskID is not valid: line 1, column 1: undeclared reference to 'task'",
		},
		"taskID with a regular expression that does not compile": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "regex.extract(response.headers.location, '/([0-9]+').orValue('')"},
			want: "CEL expression spec.operations[1].taskID is not valid: regex.extract: error parsing regexp: missing closing ): `/([0-9]+`",
		},
		"taskID with a regular expression of two groups": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "regex.extract(response.text, '(a)(b)').orValue('')"},
			want: `CEL expression spec.operations[1].taskID is not valid: regex.extract: the regular expression "(a)(b)" has more than one capturing group`,
		},
		"body sees no credentials": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Body: "credentials.password"},
			want: "CEL expression spec.operations[1].body is not valid: line 1, column 1: undeclared reference to 'credentials'",
		},
		"body selects a field the task does not have": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Body: "{'a': task.spec}"},
			want: `CEL expression spec.operations[1].body is not valid: line 1, column 11: task has no field "spec" (it has body, parameters, namespace, name, uid)`,
		},
		"body yields a bool": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Body: "task.name == 'x'"},
			want: "CEL expression spec.operations[1].body must yield a map, a list, a string or null, but yields bool",
		},
		"taskID missing for HTTP": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs"},
			want: "field spec.operations[1].taskID is required for type HTTP: a CEL expression that reads the job's ID from the answer",
		},
		"taskID missing for TrafficOps": {
			backendType: v1alpha1.BackendTypeTrafficOps,
			op:          v1alpha1.Operation{Name: "start", Path: "/api/{apiVersion}/acme_renewals"},
			want:        "field spec.operations[1].taskID is required for type TrafficOps",
		},
		"method GET": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Method: http.MethodGet},
			want: `field spec.operations[1].method "GET" is not POST or PUT`,
		},
		"unknown content type": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", ContentType: "text/plain"},
			want: `field spec.operations[1].contentType "text/plain" is not application/json, application/x-www-form-urlencoded or multipart/form-data`,
		},
		"path with a dot segment": {
			op:   v1alpha1.Operation{Name: "start", Path: "/v1/{region}/../admin", TaskID: "response.body.id"},
			want: `field spec.operations[1].path "/v1/{region}/../admin" holds a dot segment: a server may read the dot segment ".." in it`,
		},
		"path with an encoded dot segment": {
			op:   v1alpha1.Operation{Name: "start", Path: "/v1/%2e%2e/admin", TaskID: "response.body.id"},
			want: `field spec.operations[1].path "/v1/%2e%2e/admin" holds a dot segment`,
		},
		"path not percent-encoded": {
			op:   v1alpha1.Operation{Name: "start", Path: "/v1/my jobs", TaskID: "response.body.id"},
			want: `field spec.operations[1].path must be written percent-encoded, as it is sent: "/v1/my jobs" is not`,
		},
		"query not percent-encoded": {
			op:   v1alpha1.Operation{Name: "start", Path: "/v1/jobs?q=a b", TaskID: "response.body.id"},
			want: `field spec.operations[1].path must be written percent-encoded, as it is sent: its query holds the byte ' '`,
		},
		"path relative": {
			op:   v1alpha1.Operation{Name: "start", Path: "jobs", TaskID: "response.body.id"},
			want: "field spec.operations[1].path must start with /",
		},
		"path names the task ID": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs/{taskID}", TaskID: "response.body.id"},
			want: "field spec.operations[1].path names {taskID}, but a start request has no task ID yet",
		},
		"header carrying credentials": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Headers: map[string]string{"authorization": "Bearer x"}},
			want: "field spec.operations[1].headers: authorization cannot be set here: it carries credentials: the backend's authentication sets it",
		},
		"header breaking the framing": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Headers: map[string]string{"Transfer-Encoding": "chunked"}},
			want: "field spec.operations[1].headers: Transfer-Encoding cannot be set here: it would break the request's framing",
		},
		"Content-Type header": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Headers: map[string]string{"Content-Type": "text/plain"}},
			want: "field spec.operations[1].headers: Content-Type cannot be set here: it is set from contentType",
		},
		"the idempotency key header": {
			op: v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", IdempotencyKeyHeader: "Idempotency-Key",
				Headers: map[string]string{"idempotency-key": "fixed"}},
			want: "field spec.operations[1].headers: idempotency-key cannot be set here: it carries the idempotency key",
		},
		"ZStack's job UUID header": {
			backendType: v1alpha1.BackendTypeZStack,
			op:          v1alpha1.Operation{Name: "start", Path: "/zstack/v1/vm-instances", Headers: map[string]string{"X-Job-UUID": "fixed"}},
			want:        "field spec.operations[1].headers: X-Job-UUID cannot be set here: it carries the idempotency key",
		},
		"API Gateway's token header": {
			backendType: v1alpha1.BackendTypeAPIGateway,
			op:          v1alpha1.Operation{Name: "start", Path: "/v2/{projectID}/x", Headers: map[string]string{"X-Auth-Token": "t"}},
			want:        "field spec.operations[1].headers: X-Auth-Token cannot be set here: it carries credentials",
		},
		"invalid header name": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Headers: map[string]string{"X Bad": "v"}},
			want: `field spec.operations[1].headers: "X Bad" is not a valid HTTP header name`,
		},
		"header value with a line break": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", Headers: map[string]string{"X-Note": "a\r\nHost: evil"}},
			want: "field spec.operations[1].headers: the value of X-Note holds a control character (a line break, say), which a header cannot carry",
		},
		"idempotency key header that is not a header name": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", IdempotencyKeyHeader: "Idempotency Key"},
			want: `field spec.operations[1].idempotencyKeyHeader "Idempotency Key" is not a valid HTTP header name`,
		},
		"idempotency key in a reserved header": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", IdempotencyKeyHeader: "Authorization"},
			want: `field spec.operations[1].idempotencyKeyHeader "Authorization" cannot carry the key: it carries credentials`,
		},
		"ZStack key in another header": {
			backendType: v1alpha1.BackendTypeZStack,
			op:          v1alpha1.Operation{Name: "start", Path: "/zstack/v1/vm-instances", IdempotencyKeyHeader: "Idempotency-Key"},
			want:        `field spec.operations[1].idempotencyKeyHeader "Idempotency-Key": a ZStack operation always sends its job UUID in X-Job-UUID`,
		},
		"maxRunning zero": {
			op:   v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id", MaxRunning: ptr.To[int32](0)},
			want: "field spec.operations[1].maxRunning must be at least 1",
		},
		"name taken": {
			op:   v1alpha1.Operation{Name: "first", Path: "/jobs", TaskID: "response.body.id"},
			want: `field spec.operations[1].name: "first" names an earlier operation too`,
		},
		"backend value that cannot be a path segment": {
			op:   v1alpha1.Operation{Name: "start", Path: "/v1/{dots}/jobs", TaskID: "response.body.id"},
			want: `field spec.operations[1].path: parameter dots ".." cannot be sent: a server may read the dot segment ".." in it and leave the task's path (set in spec.http.parameters)`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			backendType := tc.backendType
			if backendType == "" {
				backendType = v1alpha1.BackendTypeHTTP
			}
			spec := backendSpec(backendType, ok, tc.op)
			if backendType == v1alpha1.BackendTypeHTTP {
				spec.HTTP.Parameters["dots"] = ".."
			}
			_, err := Compile(spec)
			if err == nil {
				t.Fatalf("Compile succeeded, want an error starting %q", tc.want)
			}
			if kind := backend.KindOf(err); kind != backend.KindInvalidConfig {
				t.Errorf("kind %s, want InvalidConfig", kind)
			}
			if got := err.Error(); len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("error\n got %s\nwant %s...", got, tc.want)
			}
		})
	}
}

func TestCompileAppliesDefaultsPerBackendType(t *testing.T) {
	type compiled struct {
		Method, IdempotencyKeyHeader, ContentType, Body, Accepted, TaskID string
		KeyIsTaskID                                                       bool
		MaxRunning                                                        int32
		Parameters                                                        map[string]string
	}
	const accepted = "spec.operations[0].accepted (default response.status >= 200 && response.status < 300)"
	const body = "spec.operations[0].body (default task.body)"
	cases := map[string]struct {
		spec v1alpha1.TaskBackendSpec
		want compiled
	}{
		"APIGateway": {
			spec: backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "import", Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import",
				ContentType: v1alpha1.ContentTypeMultipart}),
			want: compiled{Method: "POST", ContentType: "multipart/form-data", Body: body, Accepted: accepted,
				TaskID:     "spec.operations[0].taskID (default response.body.task_id)",
				Parameters: map[string]string{"projectID": "0605767a3300d5762fb7c0186d9e1779", "instanceID": "eddc4d25480b4cd6b512f270a1b8b341"}},
		},
		"NetworkInsight": {
			spec: backendSpec(v1alpha1.BackendTypeNetworkInsight, v1alpha1.Operation{Name: "save", Path: "/api/ni/groups/discovered-applications/save"}),
			want: compiled{Method: "POST", ContentType: "application/json", Body: body, Accepted: accepted,
				TaskID: "spec.operations[0].taskID (default response.body.request_id)", Parameters: map[string]string{}},
		},
		"ZStack": {
			spec: backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances", MaxRunning: ptr.To[int32](3)}),
			want: compiled{Method: "POST", IdempotencyKeyHeader: "X-Job-UUID", ContentType: "application/json", Body: body, Accepted: accepted,
				KeyIsTaskID: true, MaxRunning: 3, Parameters: map[string]string{}},
		},
		"ZStack with the header spelled out": {
			spec: backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances", IdempotencyKeyHeader: "x-job-uuid"}),
			want: compiled{Method: "POST", IdempotencyKeyHeader: "X-Job-UUID", ContentType: "application/json", Body: body, Accepted: accepted,
				KeyIsTaskID: true, Parameters: map[string]string{}},
		},
		"TrafficOps": {
			spec: backendSpec(v1alpha1.BackendTypeTrafficOps, v1alpha1.Operation{Name: "renew", Path: "/api/{apiVersion}/acme_autorenew",
				TaskID: "regex.extract(response.headers.location, '/async_status/([0-9]+)').orValue('')"}),
			want: compiled{Method: "POST", ContentType: "application/json", Body: body, Accepted: accepted,
				TaskID: "spec.operations[0].taskID", Parameters: map[string]string{"apiVersion": "5.0"}},
		},
		"HTTP, everything given": {
			spec: backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/v1/{region}/jobs", Method: http.MethodPut,
				ContentType: v1alpha1.ContentTypeForm, Body: "{'name': task.name}", Accepted: "response.status == 201", TaskID: "response.body.id",
				IdempotencyKeyHeader: "idempotency-key"}),
			want: compiled{Method: "PUT", IdempotencyKeyHeader: "idempotency-key", ContentType: "application/x-www-form-urlencoded",
				Body: "spec.operations[0].body", Accepted: "spec.operations[0].accepted", TaskID: "spec.operations[0].taskID",
				Parameters: map[string]string{"region": "eu-1"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			op := onlyOperation(t, tc.spec)
			got := compiled{Method: op.Method, IdempotencyKeyHeader: op.IdempotencyKeyHeader, ContentType: string(op.contentType),
				Body: op.body.Field(), Accepted: op.accepted.Field(), KeyIsTaskID: op.keyIsTaskID, MaxRunning: op.MaxRunning, Parameters: op.parameters}
			if op.taskID != nil {
				got.TaskID = op.taskID.Field()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("compiled operation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileOfNoOperationsIsEmpty(t *testing.T) {
	ops, err := Compile(backendSpec(v1alpha1.BackendTypeHTTP))
	if err != nil || len(ops) != 0 {
		t.Fatalf("Compile = %v, %v; want no operations", ops, err)
	}
}
