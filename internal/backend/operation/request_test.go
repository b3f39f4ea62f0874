package operation

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// task is a task of namespace apps with body.
func task(body any, parameters map[string]string) Task {
	return Task{Body: body, Parameters: parameters, Namespace: "apps", Name: "import-petstore", UID: "8f3c2f4e-5a43-4a53-9f3e-1f0f8e0f2a11"}
}

// decodeJSON is how the controller decodes a task's body.
func decodeJSON(t *testing.T, doc string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("test body: %v", err)
	}
	return v
}

func TestRequestEncodesTheBodyPerContentType(t *testing.T) {
	cases := map[string]struct {
		contentType v1alpha1.SubmitContentType
		body        string // the expression; "" for task.body
		taskBody    string // JSON
		wantType    string
		wantBody    string
	}{
		"JSON: the task's body, keys sorted, numbers as written": {
			taskBody: `{"name": "petstore", "replicas": 3, "ratio": 0.25, "big": 1e21, "tags": ["a", "<b>"], "nested": {"z": null, "a": true}}`,
			wantType: "application/json",
			wantBody: `{"big":1e+21,"name":"petstore","nested":{"a":true,"z":null},"ratio":0.25,"replicas":3,"tags":["a","\u003cb\u003e"]}`,
		},
		"JSON: built from the task and the backend's parameters": {
			body:     `{'name': task.name, 'namespace': task.namespace, 'uid': task.uid, 'region': parameters.region, 'zone': task.parameters.zone, 'spec': task.body, 'count': 2, 'list': [1u, 2.5, b'x'.size()]}`,
			taskBody: `{"a": 1}`,
			wantType: "application/json",
			wantBody: `{"count":2,"list":[1,2.5,1],"name":"import-petstore","namespace":"apps","region":"eu-1","spec":{"a":1},"uid":"8f3c2f4e-5a43-4a53-9f3e-1f0f8e0f2a11","zone":"b"}`,
		},
		"JSON: a list": {
			body:     `[task.body.a, 'x']`,
			taskBody: `{"a": {"b": [1, 2]}}`,
			wantType: "application/json",
			wantBody: `[{"b":[1,2]},"x"]`,
		},
		"JSON: an optional": {
			body:     `{'a': task.body.?missing, 'b': task.body.?present}`,
			taskBody: `{"present": "yes"}`,
			wantType: "application/json",
			wantBody: `{"a":null,"b":"yes"}`,
		},
		"JSON: a string is sent as it is": {
			body:     `'<xml>' + task.name + '</xml>'`,
			taskBody: `{}`,
			wantType: "application/json",
			wantBody: `<xml>import-petstore</xml>`,
		},
		"JSON: an empty map": {
			taskBody: `{}`,
			wantType: "application/json",
			wantBody: `{}`,
		},
		"JSON: null is no body": {
			body:     `task.body.?missing.orValue(null)`,
			taskBody: `{}`,
		},
		"form: a map of scalars, a null field left out": {
			contentType: v1alpha1.ContentTypeForm,
			taskBody:    `{"name": "pet store", "count": 3, "ratio": 0.5, "dry": false, "sym": "a&b=c+d", "gone": null}`,
			wantType:    "application/x-www-form-urlencoded",
			wantBody:    "count=3&dry=false&name=pet+store&ratio=0.5&sym=a%26b%3Dc%2Bd",
		},
		"form: a string is sent as it is": {
			contentType: v1alpha1.ContentTypeForm,
			body:        `'a=1&b=' + task.name`,
			taskBody:    `{}`,
			wantType:    "application/x-www-form-urlencoded",
			wantBody:    "a=1&b=import-petstore",
		},
		"form: an empty map": {
			contentType: v1alpha1.ContentTypeForm,
			taskBody:    `{}`,
			wantType:    "application/x-www-form-urlencoded",
			wantBody:    "",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
				ContentType: tc.contentType, Body: tc.body}))
			req, err := op.Request(context.Background(), task(decodeJSON(t, tc.taskBody), map[string]string{"zone": "b"}), "")
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if got := req.Header.Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type %q, want %q", got, tc.wantType)
			}
			if got := string(req.Body); got != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", got, tc.wantBody)
			}
			if tc.wantType == "" && req.Body != nil {
				t.Errorf("body %q, want none", req.Body)
			}
		})
	}
}

// part is one part of a multipart body, read back.
type part struct {
	Name, FileName, ContentType, Content string
}

// readMultipart parses a multipart body back with mime/multipart.
func readMultipart(t testing.TB, contentType string, body []byte) []part {
	t.Helper()
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q is not multipart/form-data with a boundary (%v)", contentType, err)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts []part
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("reading the multipart body back: %v\n%s", err, body)
		}
		content, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("reading a part back: %v", err)
		}
		_, disposition, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		parts = append(parts, part{Name: p.FormName(), FileName: disposition["filename"], ContentType: p.Header.Get("Content-Type"), Content: string(content)})
	}
}

func TestRequestWritesAMultipartFormWithFileParts(t *testing.T) {
	// API Gateway's async-import: the OpenAPI document as a file part, beside text fields.
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "import",
		Path:        "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import",
		ContentType: v1alpha1.ContentTypeMultipart,
		Body: `{'file': {'filename': 'petstore "v2".yaml', 'content': task.body.swagger}, 'is_create_group': true, 'group_id': task.parameters.group,
			'extend_mode': task.body.?mode, 'count': 2, 'attachments': [{'filename': 'a.csv', 'content': 'x,y', 'contentType': 'text/csv; charset=utf-8'}, 'note']}`}))
	body := map[string]any{"swagger": "openapi: 3.0.0\r\n--boundary-lookalike\ninfo: {title: Petstore}\n"}
	req, err := op.Request(context.Background(), task(body, map[string]string{"group": "g1"}), "")
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if req.Path != "/v2/0605767a3300d5762fb7c0186d9e1779/apigw/instances/eddc4d25480b4cd6b512f270a1b8b341/openapi/async-import" {
		t.Errorf("path %s", req.Path)
	}
	want := []part{
		{Name: "attachments", FileName: "a.csv", ContentType: "text/csv; charset=utf-8", Content: "x,y"},
		{Name: "attachments", Content: "note"},
		{Name: "count", Content: "2"},
		{Name: "file", FileName: `petstore "v2".yaml`, ContentType: "application/octet-stream", Content: body["swagger"].(string)},
		{Name: "group_id", Content: "g1"},
		{Name: "is_create_group", Content: "true"},
	}
	if diff := cmp.Diff(want, readMultipart(t, req.Header.Get("Content-Type"), req.Body)); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
}

func TestRequestRefusesABodyItCannotEncode(t *testing.T) {
	cases := map[string]struct {
		contentType v1alpha1.SubmitContentType
		body        string
		taskBody    any
		want        string
	}{
		"the expression fails on the task": {
			body: "{'a': task.body.missing}",
			want: "CEL expression spec.operations[0].body failed on the task: no such key: missing",
		},
		"the default fails on the task": {
			body:     "",
			taskBody: 5.0,
			want:     "CEL expression spec.operations[0].body (default task.body) yielded a body that cannot be sent as application/json: it is the double 5; a body is a map, a list, a string or null",
		},
		"a bool": {
			body: "dyn(task.name == 'x')",
			want: "CEL expression spec.operations[0].body yielded a body that cannot be sent as application/json: it is the bool false; a body is a map, a list, a string or null",
		},
		"bytes in JSON": {
			body: "{'a': [b'xyz']}",
			want: "CEL expression spec.operations[0].body yielded a body that cannot be sent as application/json: body.a[0] is bytes, which JSON cannot hold: make it text, e.g. with base64.encode()",
		},
		"a map with an int key in JSON": {
			body: "{'a': {1: 'x'}}",
			want: "CEL expression spec.operations[0].body yielded a body that cannot be sent as application/json: body.a has the key the int 1; keys must be strings",
		},
		"NaN in JSON": {
			body: `{'a b': double('NaN')}`,
			want: `CEL expression spec.operations[0].body yielded a body that cannot be sent as application/json: body["a b"] is NaN, which JSON cannot hold`,
		},
		"a nested map in a form": {
			contentType: v1alpha1.ContentTypeForm,
			body:        "{'a': 'x', 'b': {'c': 1}}",
			want:        `CEL expression spec.operations[0].body yielded a body that cannot be sent as application/x-www-form-urlencoded: field "b" is a map, but a form field holds a string, a number or a bool (multipart/form-data holds files; JSON nests)`,
		},
		"a list in a form": {
			contentType: v1alpha1.ContentTypeForm,
			body:        "{'a': [1, 2]}",
			want:        `field "a" is a list, but a form field holds a string, a number or a bool`,
		},
		"a list as a form": {
			contentType: v1alpha1.ContentTypeForm,
			body:        "[1, 2]",
			want:        "it is a list, but a form is made of fields: yield a map",
		},
		"a string as a multipart form": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "'a=b'",
			want:        "CEL expression spec.operations[0].body yielded a body that cannot be sent as multipart/form-data: it is a string, but a multipart form is made of fields: yield a map",
		},
		"a multipart map that is not a file": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "{'doc': {'name': 'a.yaml', 'content': 'x'}}",
			want:        `field "doc" is a map with the key "name", but a file part is {filename, content} and may have a contentType`,
		},
		"a multipart file without content": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "{'doc': {'filename': 'a.yaml'}}",
			want:        `field "doc" is a file whose content is not a string or bytes`,
		},
		"a multipart file name with a line break": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "{'doc': {'filename': 'a\\r\\nContent-Type: text/html', 'content': 'x'}}",
			want:        `field "doc": the filename "a\r\nContent-Type: text/html" holds a control character or invalid UTF-8`,
		},
		"a multipart field name with a line break": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "{'a\\nb': 'x'}",
			want:        `the field name "a\nb" holds a control character or invalid UTF-8`,
		},
		"a multipart file with a bad content type": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "{'doc': {'filename': 'a', 'content': 'x', 'contentType': 'text/html\\r\\nX: y'}}",
			want:        `field "doc" is a file whose contentType is not a media type such as text/csv`,
		},
		"a list in a list in a multipart form": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "{'a': [['x']]}",
			want:        `field "a" holds a list in a list; a multipart form has no way to nest`,
		},
		"the task's body repeated past the limit": {
			body:     "[task.body, task.body, task.body]",
			taskBody: strings.Repeat("x", 1<<20),
			want:     "CEL expression spec.operations[0].body yielded a body that cannot be sent as application/json: it is larger than 2097152 bytes (2 MiB) once encoded",
		},
		"a string past the limit": {
			body:     "task.body + task.body + task.body",
			taskBody: strings.Repeat("x", 1<<20),
			want:     "it is larger than 2097152 bytes (2 MiB) once encoded",
		},
		"a form past the limit": {
			contentType: v1alpha1.ContentTypeForm,
			body:        "{'a': task.body, 'b': task.body, 'c': task.body}",
			taskBody:    strings.Repeat("x", 1<<20),
			want:        "it is larger than 2097152 bytes (2 MiB) once encoded",
		},
		"a multipart form past the limit": {
			contentType: v1alpha1.ContentTypeMultipart,
			body:        "{'a': [{'filename': 'a', 'content': task.body}, {'filename': 'b', 'content': task.body}, task.body]}",
			taskBody:    strings.Repeat("x", 1<<20),
			want:        "it is larger than 2097152 bytes (2 MiB) once encoded",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
				ContentType: tc.contentType, Body: tc.body}))
			taskBody := tc.taskBody
			if taskBody == nil {
				taskBody = map[string]any{}
			}
			_, err := op.Request(context.Background(), task(taskBody, nil), "")
			if err == nil {
				t.Fatalf("Request succeeded, want %q", tc.want)
			}
			if kind := backend.KindOf(err); kind != backend.KindTerminal {
				t.Errorf("kind %s, want Terminal", kind)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestRequestBodyOfDeepNestingIsRefused(t *testing.T) {
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id"}))
	deep := any("x")
	for range maxNesting + 10 {
		deep = []any{deep}
	}
	_, err := op.Request(context.Background(), task(map[string]any{"a": deep}, nil), "")
	if want := "it nests deeper than 256 levels"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Request: %v, want %q", err, want)
	}
}

func TestRequestFillsThePathBackendFirstAndRefusesOverrides(t *testing.T) {
	cases := map[string]struct {
		spec       v1alpha1.TaskBackendSpec
		parameters map[string]string
		wantPath   string
		wantErr    string
	}{
		"API Gateway's project and instance": {
			spec:     backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "export", Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-export"}),
			wantPath: "/v2/0605767a3300d5762fb7c0186d9e1779/apigw/instances/eddc4d25480b4cd6b512f270a1b8b341/openapi/async-export",
		},
		"a task may not set API Gateway's project": {
			spec:       backendSpec(v1alpha1.BackendTypeAPIGateway, v1alpha1.Operation{Name: "export", Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-export"}),
			parameters: map[string]string{"projectID": "0605767a3300d5762fb7c0186d9e1779"},
			wantErr:    "spec.submit.parameters.projectID is set by the backend (spec.apiGateway.projectID); a task may only fill parameters the backend leaves unset",
		},
		"a task may not set the HTTP backend's parameter, even one the path does not use": {
			spec:       backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id"}),
			parameters: map[string]string{"region": "us-1"},
			wantErr:    "spec.submit.parameters.region is set by the backend (spec.http.parameters); a task may only fill parameters the backend leaves unset",
		},
		"the task fills what the backend leaves unset, in the path and the query": {
			spec:       backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/v1/{region}/{cluster}/jobs?dry={dry}&x=1", TaskID: "response.body.id"}),
			parameters: map[string]string{"cluster": "c 1/a", "dry": "a&b=c"},
			wantPath:   "/v1/eu-1/c%201%2Fa/jobs?dry=a%26b%3Dc&x=1",
		},
		"a placeholder nobody fills": {
			spec:    backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/v1/{region}/{cluster}/jobs", TaskID: "response.body.id"}),
			wantErr: "spec.operations[0].path: placeholder {cluster} has no value: set it in spec.http.parameters of the backend or spec.submit.parameters of the task",
		},
		"a placeholder nobody fills, on a backend without parameters": {
			spec:    backendSpec(v1alpha1.BackendTypeNetworkInsight, v1alpha1.Operation{Name: "save", Path: "/api/ni/{group}/save"}),
			wantErr: "spec.operations[0].path: placeholder {group} has no value: set it in spec.submit.parameters of the task",
		},
		"Traffic Ops' API version": {
			spec: backendSpec(v1alpha1.BackendTypeTrafficOps, v1alpha1.Operation{Name: "renew", Path: "/api/{apiVersion}/acme_autorenew",
				TaskID: "response.body.id"}),
			wantPath: "/api/5.0/acme_autorenew",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			op := onlyOperation(t, tc.spec)
			req, err := op.Request(context.Background(), task(map[string]any{}, tc.parameters), "k")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || backend.KindOf(err) != backend.KindTerminal {
					t.Fatalf("Request: %v (%s), want the Terminal error %q", err, backend.KindOf(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if req.Path != tc.wantPath {
				t.Errorf("path %s, want %s", req.Path, tc.wantPath)
			}
		})
	}
}

func TestHostileParameterValuesNeverLeaveTheirSegment(t *testing.T) {
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/v1/{region}/clusters/{cluster}/jobs?c={cluster}",
		TaskID: "response.body.id"}))
	for _, h := range backendtest.HostileTaskIDs {
		req, err := op.Request(context.Background(), task(map[string]any{}, map[string]string{"cluster": h.ID}), "")
		if h.Refused() {
			if err == nil || backend.KindOf(err) != backend.KindTerminal || !strings.Contains(err.Error(), "parameter cluster") {
				t.Errorf("cluster %q: Request gave path %q, %v; want a Terminal error naming the parameter", h.ID, req.Path, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("cluster %q: %v", h.ID, err)
			continue
		}
		if want := "/v1/eu-1/clusters/" + h.Segment + "/jobs?c=" + url.QueryEscape(h.ID); req.Path != want {
			t.Errorf("cluster %q: path %s, want %s", h.ID, req.Path, want)
		}
	}
}

func TestRequestHeaders(t *testing.T) {
	cases := map[string]struct {
		spec v1alpha1.TaskBackendSpec
		body string
		want http.Header
	}{
		"static headers, the content type and the idempotency key": {
			spec: backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
				IdempotencyKeyHeader: "Idempotency-Key", Headers: map[string]string{"x-tenant": "t1", "Accept": "application/vnd.acme+json"}}),
			want: http.Header{"X-Tenant": {"t1"}, "Accept": {"application/vnd.acme+json"}, "Content-Type": {"application/json"},
				"Idempotency-Key": {"8f3c2f4e-1"}},
		},
		"ZStack's job UUID": {
			spec: backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances"}),
			want: http.Header{"Content-Type": {"application/json"}, "X-Job-Uuid": {"8f3c2f4e-1"}},
		},
		"no body, no content type": {
			spec: backendSpec(v1alpha1.BackendTypeNetworkInsight, v1alpha1.Operation{Name: "save", Path: "/api/ni/save", Body: "null"}),
			want: http.Header{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			op := onlyOperation(t, tc.spec)
			req, err := op.Request(context.Background(), task(map[string]any{"a": 1.0}, nil), "8f3c2f4e-1")
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if req.Method != http.MethodPost {
				t.Errorf("method %s", req.Method)
			}
			if diff := cmp.Diff(tc.want, req.Header); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestWithoutAKeyForTheKeyHeaderIsRefused(t *testing.T) {
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeZStack, v1alpha1.Operation{Name: "create-vm", Path: "/zstack/v1/vm-instances"}))
	for _, key := range []string{"", "a\r\nb"} {
		if _, err := op.Request(context.Background(), task(map[string]any{}, nil), key); err == nil {
			t.Errorf("key %q: Request succeeded", key)
		}
	}
}

func TestRequestDoesNotChangeTheCompiledOperation(t *testing.T) {
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
		IdempotencyKeyHeader: "Idempotency-Key", Headers: map[string]string{"X-Tenant": "t1"}}))
	for _, key := range []string{"k1", "k2"} {
		req, err := op.Request(context.Background(), task(map[string]any{}, nil), key)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer secret") // as a vendor's Send does
		if got := req.Header.Get("Idempotency-Key"); got != key {
			t.Errorf("key %q sent as %q", key, got)
		}
	}
	if got := op.headers.Get("Authorization"); got != "" || len(op.headers) != 1 {
		t.Errorf("the operation's headers changed: %v", op.headers)
	}
}

func TestRequestOfACancelledContextIsNotTheTasksFault(t *testing.T) {
	op := onlyOperation(t, backendSpec(v1alpha1.BackendTypeHTTP, v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id",
		Body: "task.body.map(i, i + 1.0)"}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	list := make([]any, 1000)
	for i := range list {
		list[i] = float64(i)
	}
	_, err := op.Request(ctx, task(list, nil), "")
	if err == nil || backend.KindOf(err) == backend.KindTerminal || !strings.Contains(err.Error(), "evaluation cancelled") {
		t.Fatalf("Request: %v (%s), want an error that is not Terminal", err, backend.KindOf(err))
	}
}
