// Package operation compiles a backend's spec.operations, the jobs AsyncTasks may start through it
// (spec.submit), and builds and reads their start requests: Compile checks every operation of a spec once,
// Request builds the request that starts one task's job (path, encoded body, headers), and Answer reads the
// vendor's answer to it (whether it took the job, and the job's ID).
//
// The expressions are Common Expression Language (CEL), compiled with the HTTP backend's functions, limits and
// messages (internal/backend/httpcel), plus cel-go's regular-expression extension (regex.extract,
// regex.extractAll, regex.replace) for IDs that only a header or a text holds. The body expression sees the
// task and the backend's parameters, never credentials; accepted and taskID see the vendor's answer.
package operation

import (
	"fmt"
	"maps"
	"net/http"
	"net/textproto"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/httpcel"
)

// Operation is one compiled entry of a backend's spec.operations.
type Operation struct {
	Name string
	// Method is POST (default) or PUT.
	Method string
	// IdempotencyKeyHeader is the header that carries the attempt's key; "" when none. ZStack: always
	// X-Job-UUID.
	IdempotencyKeyHeader string
	// MaxRunning is the most tasks of the operation started and not finished at once; 0 is no limit.
	MaxRunning int32

	// field is spec.operations[<index>], for messages.
	field       string
	path        string
	contentType v1alpha1.SubmitContentType
	headers     http.Header
	// parameters are the backend's own values of placeholders, and setBy where each is set (for messages);
	// taskFills says where a task fills the others.
	parameters map[string]string
	setBy      map[string]string
	taskFills  string

	body, accepted, taskID *httpcel.Expression
	// keyIsTaskID: the job's ID is the key sent (ZStack's default).
	keyIsTaskID bool
}

// The variables of the expressions.
const (
	varTask       = "task"
	varParameters = "parameters"
	varResponse   = "response"
	varKey        = "key"
)

// Defaults of the expressions.
const (
	defaultBody     = "task.body"
	defaultAccepted = "response.status >= 200 && response.status < 300"
)

// defaultTaskID is where each vendor's answer to a start request holds the job's ID: API Gateway answers 202
// {"task_id": "<32 hex>"}, Network Insight 200 {"request_id": "...", "callback_API": "..."}. ZStack's is the
// job UUID the operator sent (keyIsTaskID); HTTP and Traffic Ops operations must say.
var defaultTaskID = map[v1alpha1.BackendType]string{
	v1alpha1.BackendTypeAPIGateway:     "response.body.task_id",
	v1alpha1.BackendTypeNetworkInsight: "response.body.request_id",
}

// zstackJobUUIDHeader is the header in which a ZStack caller chooses the UUID of the API job it starts.
const zstackJobUUIDHeader = "X-Job-UUID"

// maxOperations is the most operations a backend may list (the CRD's MaxItems).
const maxOperations = 16

// bodyEnv is the environment of the body expression: the task and the backend's parameters, never
// credentials. answerEnv is that of accepted and taskID: the vendor's answer and the key sent.
var (
	bodyEnv = httpcel.MustEnv(ext.Regex(),
		cel.Variable(varTask, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varParameters, cel.MapType(cel.StringType, cel.StringType)))
	answerEnv = httpcel.MustEnv(ext.Regex(),
		cel.Variable(varResponse, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varKey, cel.StringType))

	bodyFields   = map[string][]string{varTask: {"body", "parameters", "namespace", "name", "uid"}}
	answerFields = map[string][]string{varResponse: httpcel.ResponseFields()}
)

// What each expression must yield.
var (
	yieldsBody   = httpcel.Output{Kinds: []types.Kind{types.MapKind, types.ListKind, types.StringKind, types.BytesKind}, Name: "a map, a list, a string or null"}
	yieldsTaskID = httpcel.Output{Kinds: []types.Kind{types.StringKind, types.IntKind, types.UintKind, types.DoubleKind}, Name: "a string or a number"}
)

// Compile compiles every operation of spec, defaults applied per spec.Type. It returns a *backend.Error of
// KindInvalidConfig naming the field (spec.operations[<index>].<field>) when an expression does not compile
// or type-check or yields the wrong type, a path template is malformed or holds a dot segment, a header is
// invalid or one the operator sets, or a required field is missing.
func Compile(spec v1alpha1.TaskBackendSpec) (map[string]*Operation, error) {
	if len(spec.Operations) > maxOperations {
		return nil, backend.Errorf(backend.KindInvalidConfig, "field spec.operations lists %d operations; at most %d are allowed", len(spec.Operations), maxOperations)
	}
	params, setBy, taskFills := backendParameters(spec)
	ops := make(map[string]*Operation, len(spec.Operations))
	for i, src := range spec.Operations {
		op, err := compileOne(spec, i, src, params, setBy, taskFills)
		if err != nil {
			return nil, err
		}
		if _, dup := ops[op.Name]; dup {
			return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.name: %q names an earlier operation too; names must be unique", op.field, op.Name)
		}
		ops[op.Name] = op
	}
	return ops, nil
}

// backendParameters returns the values the backend sets of path placeholders (and the body expression's
// parameters), where each is set, and where a task fills the others, for messages.
func backendParameters(spec v1alpha1.TaskBackendSpec) (params, setBy map[string]string, taskFills string) {
	params, setBy, taskFills = map[string]string{}, map[string]string{}, "spec.submit.parameters of the task"
	switch spec.Type {
	case v1alpha1.BackendTypeAPIGateway:
		if g := spec.APIGateway; g != nil {
			params["projectID"], setBy["projectID"] = g.ProjectID, "spec.apiGateway.projectID"
			params["instanceID"], setBy["instanceID"] = g.InstanceID, "spec.apiGateway.instanceID"
		}
	case v1alpha1.BackendTypeTrafficOps:
		version := "5.0"
		if t := spec.TrafficOps; t != nil && t.APIVersion != "" {
			version = t.APIVersion
		}
		params["apiVersion"], setBy["apiVersion"] = version, "spec.trafficOps.apiVersion"
	case v1alpha1.BackendTypeHTTP:
		if h := spec.HTTP; h != nil {
			maps.Copy(params, h.Parameters)
			for k := range h.Parameters {
				setBy[k] = "spec.http.parameters"
			}
		}
		taskFills = "spec.http.parameters of the backend or spec.submit.parameters of the task"
	}
	return params, setBy, taskFills
}

func compileOne(spec v1alpha1.TaskBackendSpec, index int, src v1alpha1.Operation, params, setBy map[string]string, taskFills string) (*Operation, error) {
	field := fmt.Sprintf("spec.operations[%d]", index)
	op := &Operation{
		Name:        src.Name,
		Method:      string(src.Method),
		field:       field,
		path:        src.Path,
		contentType: src.ContentType,
		parameters:  params,
		setBy:       setBy,
		taskFills:   taskFills,
	}
	if op.Name == "" {
		return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.name is required", field)
	}
	switch op.Method {
	case "":
		op.Method = http.MethodPost
	case http.MethodPost, http.MethodPut:
	default:
		return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.method %q is not POST or PUT", field, src.Method)
	}
	switch op.contentType {
	case "":
		op.contentType = v1alpha1.ContentTypeJSON
	case v1alpha1.ContentTypeJSON, v1alpha1.ContentTypeForm, v1alpha1.ContentTypeMultipart:
	default:
		return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.contentType %q is not application/json, application/x-www-form-urlencoded or multipart/form-data", field, src.ContentType)
	}
	if src.MaxRunning != nil {
		if *src.MaxRunning < 1 {
			return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.maxRunning must be at least 1 (leave it out for no limit)", field)
		}
		op.MaxRunning = *src.MaxRunning
	}
	if err := op.checkPath(); err != nil {
		return nil, err
	}
	var err error
	if op.IdempotencyKeyHeader, err = idempotencyKeyHeader(spec.Type, field, src.IdempotencyKeyHeader); err != nil {
		return nil, err
	}
	if op.headers, err = staticHeaders(spec, field, src.Headers, op.IdempotencyKeyHeader); err != nil {
		return nil, err
	}
	if err := op.compileExpressions(spec.Type, src); err != nil {
		return nil, err
	}
	return op, nil
}

func (op *Operation) compileExpressions(backendType v1alpha1.BackendType, src v1alpha1.Operation) error {
	bodySrc, bodyField := orDefault(src.Body, defaultBody, op.field+".body")
	acceptedSrc, acceptedField := orDefault(src.Accepted, defaultAccepted, op.field+".accepted")
	taskIDSrc, taskIDField := src.TaskID, op.field+".taskID"
	if strings.TrimSpace(taskIDSrc) == "" {
		switch def, ok := defaultTaskID[backendType]; {
		case ok:
			taskIDSrc, taskIDField = orDefault("", def, taskIDField)
		case backendType == v1alpha1.BackendTypeZStack:
			op.keyIsTaskID = true
		default:
			return backend.Errorf(backend.KindInvalidConfig, "field %s is required for type %s: a CEL expression that reads the job's ID from the answer, e.g. response.body.id or regex.extract(response.headers['location'], '/([0-9]+)$').orValue('')",
				taskIDField, backendType)
		}
	}
	var err error
	if op.body, err = httpcel.Compile(bodyEnv, bodyField, bodySrc, yieldsBody, bodyFields, regexConstants); err != nil {
		return err
	}
	if op.accepted, err = httpcel.Compile(answerEnv, acceptedField, acceptedSrc, httpcel.YieldsBool, answerFields, regexConstants); err != nil {
		return err
	}
	if !op.keyIsTaskID {
		if op.taskID, err = httpcel.Compile(answerEnv, taskIDField, taskIDSrc, yieldsTaskID, answerFields, regexConstants); err != nil {
			return err
		}
	}
	return nil
}

// orDefault returns src and field, or def and field marked as the default, so that a failure of a default the
// user never wrote says what it evaluated.
func orDefault(src, def, field string) (string, string) {
	if strings.TrimSpace(src) != "" {
		return src, field
	}
	return def, fmt.Sprintf("%s (default %s)", field, def)
}

// checkPath refuses a path template that is not written percent-encoded as it is sent, that holds a dot
// segment a server may resolve (whatever fills the placeholders, the request must not leave the path the
// backend wrote), that names {taskID} (there is no task ID before the job starts), or whose backend values
// cannot be sent as a path segment.
func (op *Operation) checkPath() error {
	field := op.field + ".path"
	if !strings.HasPrefix(op.path, "/") {
		return backend.Errorf(backend.KindInvalidConfig, "field %s must start with /", field)
	}
	if err := httpcel.CheckPathTemplate(field, op.path); err != nil {
		return err
	}
	path, query, _ := strings.Cut(op.path, "?")
	literal := strings.Trim(placeholderText(path), "/")
	if literal != "" {
		if _, err := backend.PathSegment("path", literal); err != nil {
			why := strings.TrimPrefix(err.Error(), fmt.Sprintf("path %q cannot be sent: ", literal))
			why, _, _ = strings.Cut(why, " and leave")
			return backend.Errorf(backend.KindInvalidConfig, "field %s %q holds a dot segment: %s and resolve it", field, path, why)
		}
	}
	if bad := invalidQueryText(placeholderText(query)); bad != "" {
		return backend.Errorf(backend.KindInvalidConfig, "field %s must be written percent-encoded, as it is sent: its query holds %s", field, bad)
	}
	for _, name := range httpcel.Placeholders(op.path) {
		if _, set := op.parameters[name]; name == "taskID" && !set {
			return backend.Errorf(backend.KindInvalidConfig, "field %s names {taskID}, but a start request has no task ID yet", field)
		}
	}
	for _, name := range httpcel.Placeholders(path) {
		if value, set := op.parameters[name]; set {
			if _, err := backend.PathSegment("parameter "+name, value); err != nil {
				return backend.Errorf(backend.KindInvalidConfig, "field %s: %s (set in %s)", field, err.Error(), op.setBy[name])
			}
		}
	}
	return nil
}

// placeholderText replaces every placeholder of tmpl with "x", leaving its literal text.
func placeholderText(tmpl string) string {
	for _, name := range httpcel.Placeholders(tmpl) {
		tmpl = strings.Replace(tmpl, "{"+name+"}", "x", 1)
	}
	return tmpl
}

// invalidQueryText names what in a literal query is not sent as it is written: a control character, a space,
// "#", a non-ASCII byte or a "%" that does not start an escape; "" when nothing.
func invalidQueryText(q string) string {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c <= ' ' || c >= 0x7f:
			return fmt.Sprintf("the byte %q", c)
		case c == '#':
			return `"#"`
		case c == '%' && (i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2])):
			return `a "%" that does not start an escape`
		}
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// reservedHeaders are the headers an operation may not set: they carry credentials (the backend's own
// authentication sets them), would break the request's framing, or are set from other fields.
var reservedHeaders = map[string]string{
	"Authorization":       "it carries credentials: the backend's authentication sets it",
	"Proxy-Authorization": "it carries credentials",
	"Cookie":              "it carries credentials: the backend's authentication sets it",
	"Host":                "it would change where the request goes",
	"Content-Length":      "it would break the request's framing",
	"Transfer-Encoding":   "it would break the request's framing",
	"Connection":          "it would break the request's framing",
	"Te":                  "it would break the request's framing",
	"Trailer":             "it would break the request's framing",
	"Upgrade":             "it would break the request's framing",
	"Expect":              "it would break the request's framing",
	"Content-Type":        "it is set from contentType",
}

// authHeaders are the headers each backend type authenticates with, beside Authorization and Cookie.
var authHeaders = map[v1alpha1.BackendType][]string{
	v1alpha1.BackendTypeAPIGateway: {"X-Auth-Token", "X-Sdk-Date"},
}

func reservedHeader(spec v1alpha1.TaskBackendSpec, name, keyHeader string) string {
	canonical := textproto.CanonicalMIMEHeaderKey(name)
	if why, ok := reservedHeaders[canonical]; ok {
		return why
	}
	for _, h := range authHeaders[spec.Type] {
		if canonical == textproto.CanonicalMIMEHeaderKey(h) {
			return "it carries credentials: the backend's authentication sets it"
		}
	}
	if spec.Type == v1alpha1.BackendTypeHTTP && spec.HTTP != nil && spec.HTTP.Auth != nil && spec.HTTP.Auth.TokenHeader != "" &&
		canonical == textproto.CanonicalMIMEHeaderKey(spec.HTTP.Auth.TokenHeader) {
		return "it carries credentials: spec.http.auth.tokenHeader names it"
	}
	if keyHeader != "" && canonical == textproto.CanonicalMIMEHeaderKey(keyHeader) {
		return "it carries the idempotency key"
	}
	return ""
}

func idempotencyKeyHeader(backendType v1alpha1.BackendType, field, name string) (string, error) {
	if backendType == v1alpha1.BackendTypeZStack {
		if name != "" && !strings.EqualFold(name, zstackJobUUIDHeader) {
			return "", backend.Errorf(backend.KindInvalidConfig, "field %s.idempotencyKeyHeader %q: a ZStack operation always sends its job UUID in %s", field, name, zstackJobUUIDHeader)
		}
		return zstackJobUUIDHeader, nil
	}
	if name == "" {
		return "", nil
	}
	if !httpcel.ValidHeaderName(name) {
		return "", backend.Errorf(backend.KindInvalidConfig, "field %s.idempotencyKeyHeader %q is not a valid HTTP header name", field, name)
	}
	if why, ok := reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)]; ok {
		return "", backend.Errorf(backend.KindInvalidConfig, "field %s.idempotencyKeyHeader %q cannot carry the key: %s", field, name, why)
	}
	return name, nil
}

func staticHeaders(spec v1alpha1.TaskBackendSpec, field string, src map[string]string, keyHeader string) (http.Header, error) {
	names := make([]string, 0, len(src))
	for name := range src {
		names = append(names, name)
	}
	sort.Strings(names) // the first problem in a stable order
	headers := make(http.Header, len(src))
	for _, name := range names {
		value := src[name]
		if !httpcel.ValidHeaderName(name) {
			return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.headers: %q is not a valid HTTP header name", field, name)
		}
		if why := reservedHeader(spec, name, keyHeader); why != "" {
			return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.headers: %s cannot be set here: %s", field, name, why)
		}
		if !validHeaderValue(value) {
			return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.headers: the value of %s holds a control character (a line break, say), which a header cannot carry", field, name)
		}
		if _, twice := headers[textproto.CanonicalMIMEHeaderKey(name)]; twice {
			return nil, backend.Errorf(backend.KindInvalidConfig, "field %s.headers: %s is given twice, in different cases", field, name)
		}
		headers.Set(name, value)
	}
	return headers, nil
}

// validHeaderValue reports whether v may be sent as a header's value: no control characters but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
