package httpcel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// evalTimeout bounds one evaluation in time as well: cel-go's cost tracking makes each iteration of a
// comprehension cost time in proportion to the iterations before it, so a loop over a list of tens of thousands
// of elements runs for seconds while its cost stays under the limit. A variable so tests can tell the two
// limits apart on a loaded machine.
var evalTimeout = time.Second

const (
	// costLimit bounds one evaluation of one expression, so that a runaway expression (a comprehension over a
	// large body, nested loops) fails with a clear error instead of holding a worker. A million is what
	// Kubernetes allows one validation rule; reading every field of a 1 MiB body stays well within it.
	costLimit = 1_000_000
	// interruptEvery is how many comprehension iterations pass between checks of the evaluation's context.
	interruptEvery = 100
)

// The variables of the expressions. response and followUp are maps rather than declared object types, so that
// body can be any JSON value; knownFields makes up for the lost checking of their field names.
const (
	varResponse    = "response"
	varFollowUp    = "followUp"
	varTask        = "task"
	varCredentials = "credentials"
	varParameters  = "parameters"
)

// knownFields are the fields of the map variables; selecting any other is a compile error with its position.
var knownFields = map[string][]string{
	varResponse: {"status", "headers", "cookies", "body", "text"},
	varFollowUp: {"status", "headers", "cookies", "body", "text"},
	varTask:     {"id", "parameters"},
}

// answerEnv is the environment of the expressions that read a vendor's answer; loginEnv of the login body,
// which sees the Secret's keys instead.
var answerEnv, loginEnv = mustEnv(
	cel.Variable(varResponse, cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable(varFollowUp, cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable(varTask, cel.MapType(cel.StringType, cel.DynType)),
), mustEnv(
	cel.Variable(varCredentials, cel.MapType(cel.StringType, cel.StringType)),
	cel.Variable(varParameters, cel.MapType(cel.StringType, cel.StringType)),
)

func mustEnv(vars ...cel.EnvOption) *cel.Env {
	opts := append([]cel.EnvOption{
		cel.OptionalTypes(),
		ext.Strings(), ext.Lists(), ext.Math(), ext.Bindings(), ext.Encoders(),
		cel.Function("parseJSON", cel.Overload("parseJSON_string", []*cel.Type{cel.StringType}, cel.DynType,
			cel.UnaryBinding(parseJSONValue))),
		cel.Function("isJSON", cel.Overload("isJSON_string", []*cel.Type{cel.StringType}, cel.BoolType,
			cel.UnaryBinding(func(v ref.Val) ref.Val { return types.Bool(json.Valid([]byte(v.(types.String)))) }))),
		cel.Function("sha256", cel.Overload("sha256_string", []*cel.Type{cel.StringType}, cel.StringType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				sum := sha256.Sum256([]byte(v.(types.String)))
				return types.String(hex.EncodeToString(sum[:]))
			}))),
		cel.Function("sha512", cel.Overload("sha512_string", []*cel.Type{cel.StringType}, cel.StringType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				sum := sha512.Sum512([]byte(v.(types.String)))
				return types.String(hex.EncodeToString(sum[:]))
			}))),
	}, vars...)
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic(fmt.Sprintf("httpcel: building the CEL environment: %v", err))
	}
	return env
}

// parseJSONValue parses a string holding JSON, for vendors that nest a JSON document in a string field.
// The string can be as long as the body, so it is decoded as the body is: in place, within the shape limits.
func parseJSONValue(v ref.Val) ref.Val {
	s := string(v.(types.String))
	raw := unsafe.Slice(unsafe.StringData(s), len(s)) // read only; the decoded strings reference s
	if !json.Valid(raw) {
		var out any
		err := json.Unmarshal(raw, &out) // fails in its syntax check, before decoding anything
		return types.NewErr("parseJSON: the string is not JSON: %v", err)
	}
	if problem := backend.JSONShapeProblem(raw, maxBodyDepth, maxBodyValues); problem != "" {
		return types.NewErr("parseJSON: the string is JSON %s, more than the HTTP backend decodes", problem)
	}
	out, ok := decodeBody(raw)
	if !ok {
		return types.NewErr("parseJSON: the string is JSON with a number that does not fit a double")
	}
	return types.DefaultTypeAdapter.NativeToValue(out)
}

// outputKind is what an expression must yield; it decides which static types the checker may accept.
type outputKind int

const (
	yieldsBool outputKind = iota
	yieldsString
	yieldsNumber
	yieldsTime
	yieldsAny
)

// allowed lists the static output types each kind accepts; dyn (and null, meaning "none") always pass the
// checker, and the value is checked again when evaluated.
var allowed = map[outputKind][]*cel.Type{
	yieldsBool:   {cel.BoolType},
	yieldsString: {cel.StringType},
	yieldsNumber: {cel.IntType, cel.UintType, cel.DoubleType},
	yieldsTime:   {cel.TimestampType, cel.StringType, cel.IntType, cel.UintType, cel.DoubleType},
}

var kindNames = map[outputKind]string{
	yieldsBool:   "a bool",
	yieldsString: "a string",
	yieldsNumber: "a number",
	yieldsTime:   "a timestamp, an RFC 3339 string or an epoch number",
}

// expression is one compiled expression with the spec field it came from, for messages.
type expression struct {
	field string
	prg   cel.Program
}

// compile parses and type-checks src, and returns a KindInvalidConfig error naming field, the position and the
// CEL message when it is not a valid expression yielding kind. An empty src gives a nil expression.
func compile(env *cel.Env, field, src string, kind outputKind) (*expression, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	checked, issues := env.Compile(src)
	if issues != nil && issues.Err() != nil {
		return nil, compileError(field, issues.Errors())
	}
	if err := checkFieldNames(field, checked); err != nil {
		return nil, err
	}
	if err := checkOutputType(field, checked.OutputType(), kind); err != nil {
		return nil, err
	}
	prg, err := env.Program(checked, cel.CostLimit(costLimit), cel.InterruptCheckFrequency(interruptEvery))
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "CEL expression %s: %v", field, err)
	}
	return &expression{field: field, prg: prg}, nil
}

func compileError(field string, errs []*cel.Error) error {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		// Columns count from 1, as cel-go's own display of an error does.
		parts = append(parts, fmt.Sprintf("line %d, column %d: %s", e.Location.Line(), e.Location.Column()+1, e.Message))
	}
	return backend.Errorf(backend.KindInvalidConfig, "CEL expression %s is not valid: %s", field, strings.Join(parts, "; "))
}

// checkFieldNames rejects a selection of a field that response, followUp or task does not have, such as
// response.stauts, which the checker would let through because they are maps.
func checkFieldNames(field string, checked *cel.Ast) error {
	var bad error
	nav := ast.NavigateAST(checked.NativeRep())
	ast.PreOrderVisit(nav, ast.NewExprVisitor(func(e ast.Expr) {
		if bad != nil || e.Kind() != ast.SelectKind {
			return
		}
		sel := e.AsSelect()
		operand := sel.Operand()
		if operand.Kind() != ast.IdentKind {
			return
		}
		fields, ok := knownFields[operand.AsIdent()]
		if !ok {
			return
		}
		for _, f := range fields {
			if f == sel.FieldName() {
				return
			}
		}
		loc := checked.NativeRep().SourceInfo().GetStartLocation(e.ID())
		bad = backend.Errorf(backend.KindInvalidConfig, "CEL expression %s is not valid: line %d, column %d: %s has no field %q (it has %s)",
			field, loc.Line(), loc.Column()+1, operand.AsIdent(), sel.FieldName(), strings.Join(fields, ", "))
	}))
	return bad
}

func checkOutputType(field string, out *cel.Type, kind outputKind) error {
	if kind == yieldsAny || out.Kind() == types.DynKind || out.Kind() == types.NullTypeKind ||
		out.Kind() == types.OpaqueKind && out.TypeName() == "optional_type" {
		return nil
	}
	for _, t := range allowed[kind] {
		if out.IsExactType(t) {
			return nil
		}
	}
	return backend.Errorf(backend.KindInvalidConfig, "CEL expression %s must yield %s, but yields %s", field, kindNames[kind], out.String())
}

// eval evaluates the expression. Its errors are KindTransient: the answer was not what the expression
// expects, which is how a body not of the documented shape shows.
func (x *expression) eval(ctx context.Context, vars map[string]any) (ref.Val, error) {
	evalCtx, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	out, _, err := x.prg.ContextEval(evalCtx, vars)
	if err != nil {
		switch {
		case strings.Contains(err.Error(), "cost limit exceeded"):
			return nil, backend.Errorf(backend.KindTransient, "CEL expression %s: evaluation stopped: it exceeded the cost limit of %d (simplify it, or iterate over less of the body)", x.field, costLimit)
		case ctx.Err() != nil:
			return nil, backend.Errorf(backend.KindTransient, "CEL expression %s: evaluation cancelled: %v", x.field, ctx.Err())
		case evalCtx.Err() != nil:
			return nil, backend.Errorf(backend.KindTransient, "CEL expression %s: evaluation stopped: it ran longer than %v (simplify it, or iterate over less of the body)", x.field, evalTimeout)
		}
		return nil, backend.Errorf(backend.KindTransient, "CEL expression %s failed on the vendor's answer: %v", x.field, err)
	}
	if opt, ok := out.(*types.Optional); ok {
		if !opt.HasValue() {
			return types.NullValue, nil
		}
		out = opt.GetValue()
	}
	return out, nil
}

func isNull(v ref.Val) bool { return v == nil || v.Type() == types.NullType }

// evalBool evaluates a condition; a missing expression yields def.
func (x *expression) evalBool(ctx context.Context, vars map[string]any, def bool) (bool, error) {
	if x == nil {
		return def, nil
	}
	v, err := x.eval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, x.wrongType(v, "a bool")
	}
	return bool(b), nil
}

// evalString evaluates an expression yielding a string or null ("").
func (x *expression) evalString(ctx context.Context, vars map[string]any) (string, error) {
	if x == nil {
		return "", nil
	}
	v, err := x.eval(ctx, vars)
	if err != nil || isNull(v) {
		return "", err
	}
	s, ok := v.(types.String)
	if !ok {
		return "", x.wrongType(v, "a string")
	}
	return string(s), nil
}

// evalProgress evaluates a percent: a number rounded down and clamped to 0..100, or null.
func (x *expression) evalProgress(ctx context.Context, vars map[string]any) (*int32, error) {
	if x == nil {
		return nil, nil
	}
	v, err := x.eval(ctx, vars)
	if err != nil || isNull(v) {
		return nil, err
	}
	f, ok := number(v)
	if !ok {
		return nil, x.wrongType(v, "a number")
	}
	p := backend.Percent(f)
	if p == nil {
		return nil, backend.Errorf(backend.KindTransient, "CEL expression %s yielded NaN, not a percent", x.field)
	}
	return p, nil
}

// number reads a CEL int, uint or double as a float64.
func number(v ref.Val) (float64, bool) {
	switch n := v.(type) {
	case types.Int:
		return float64(n), true
	case types.Uint:
		return float64(n), true
	case types.Double:
		return float64(n), true
	}
	return 0, false
}

// evalTime evaluates a time: a timestamp, an RFC 3339 string, epoch seconds or (above 1e12) milliseconds.
func (x *expression) evalTime(ctx context.Context, vars map[string]any) (*time.Time, error) {
	if x == nil {
		return nil, nil
	}
	v, err := x.eval(ctx, vars)
	if err != nil || isNull(v) {
		return nil, err
	}
	switch t := v.(type) {
	case types.Timestamp:
		at := t.Time.UTC()
		return &at, nil
	case types.String:
		if t == "" {
			return nil, nil
		}
		at, err := time.Parse(time.RFC3339Nano, string(t))
		if err != nil {
			return nil, backend.Errorf(backend.KindTransient, "CEL expression %s yielded %q, which is not an RFC 3339 time", x.field, backend.OneLine(string(t), backend.MaxWordLength))
		}
		return &at, nil
	}
	f, ok := number(v)
	if !ok {
		return nil, x.wrongType(v, kindNames[yieldsTime])
	}
	at := backend.EpochTime(f)
	if at == nil {
		return nil, backend.Errorf(backend.KindTransient, "CEL expression %s yielded %v, which is not an epoch time", x.field, f)
	}
	return at, nil
}

// evalJSON evaluates a result: null or "" is none, a string holding JSON is that document, another string is
// kept as a JSON string, and any other value is written as JSON.
func (x *expression) evalJSON(ctx context.Context, vars map[string]any) (json.RawMessage, error) {
	if x == nil {
		return nil, nil
	}
	v, err := x.eval(ctx, vars)
	if err != nil || isNull(v) {
		return nil, err
	}
	if s, ok := v.(types.String); ok {
		// The string can be as long as the body (it may be the body): it is read in place, and the result is
		// its one copy.
		text := strings.TrimSpace(string(s))
		raw := unsafe.Slice(unsafe.StringData(text), len(text)) // read only
		switch {
		case text == "":
			return nil, nil
		case json.Valid(raw):
			compacted := backend.CompactJSON(raw)
			if len(compacted) == len(raw) {
				compacted = bytes.Clone(compacted) // raw itself, which must not be handed out
			}
			return compacted, nil
		}
		return backend.QuoteJSON(unsafe.Slice(unsafe.StringData(string(s)), len(s))), nil
	}
	native, err := v.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, backend.Errorf(backend.KindTransient, "CEL expression %s yielded a %s that cannot be written as JSON: %v", x.field, v.Type().TypeName(), err)
	}
	b, err := protojson.Marshal(native.(*structpb.Value))
	if err != nil {
		return nil, backend.Errorf(backend.KindTransient, "CEL expression %s yielded a value that cannot be written as JSON: %v", x.field, err)
	}
	// protojson may space its output; b is ours, so it is compacted over itself rather than copied.
	return backend.CompactJSONInPlace(b), nil
}

func (x *expression) wrongType(v ref.Val, want string) error {
	return backend.Errorf(backend.KindTransient, "CEL expression %s must yield %s, but yielded %s", x.field, want, describe(v))
}

// describe names a value's type, with the value itself when it is short, so a user sees what came back.
func describe(v ref.Val) string {
	switch t := v.(type) {
	case types.String:
		return fmt.Sprintf("the string %q", backend.OneLine(string(t), backend.MaxWordLength))
	case types.Int, types.Uint, types.Double, types.Bool:
		return fmt.Sprintf("the %s %v", v.Type().TypeName(), v.Value())
	}
	return "a " + v.Type().TypeName()
}

func compactJSON(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// answerVars is the activation of the answer expressions.
func answerVars(resp, followUp *backend.Response, taskID string, parameters map[string]string) map[string]any {
	return map[string]any{
		varResponse: responseValue(resp),
		varFollowUp: responseValue(followUp),
		varTask:     map[string]any{"id": taskID, "parameters": parameters},
	}
}

// responseValue is a response as the expressions see it; a nil response (a follow-up not sent) has status 0.
func responseValue(resp *backend.Response) map[string]any {
	if resp == nil {
		return map[string]any{"status": int64(0), "headers": map[string]string{}, "cookies": map[string]string{}, "body": nil, "text": ""}
	}
	headers := make(map[string]string, len(resp.Header))
	for name, values := range resp.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ", ")
	}
	cookies := map[string]string{}
	for _, c := range (&http.Response{Header: resp.Header}).Cookies() {
		cookies[c.Name] = c.Value
	}
	text := bodyString(resp.Body) // no copy: the body is not changed, and what leaves the backend is cloned
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	return map[string]any{
		"status":  int64(resp.StatusCode),
		"headers": headers,
		"cookies": cookies,
		"body":    parseBody(resp.Body),
		"text":    text,
	}
}

// parseBody returns the JSON value of a body, or nil when it is empty, not JSON or over the shape limits
// (which checkBodyShape refuses before any expression sees the body). Numbers are doubles, as in
// google.protobuf.Value.
func parseBody(body []byte) any {
	v, ok := decodeBody(body)
	if len(body) == 0 || !ok {
		return nil
	}
	return v
}
