package httpcel

// What other packages reuse of the HTTP backend's CEL machinery and request templates. The operations of a
// backend's spec.operations (internal/backend/operation) are expressions and path templates too: they compile
// in an environment with the same functions, cost and time limits and messages (line and column, a selection
// of a field the variable does not have), read a vendor's answer as the HTTP backend's expressions read it,
// and expand their paths as spec.http.path is expanded.

import (
	"context"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// MustEnv returns a CEL environment with the HTTP backend's options and functions (optionals; the strings,
// lists, math, bindings and encoders extensions; parseJSON, isJSON, sha256, sha512) and opts, which declare
// its variables. It panics when they do not make an environment: build it once, when the package starts.
func MustEnv(opts ...cel.EnvOption) *cel.Env { return mustEnv(opts...) }

// ResponseFields are the fields of a vendor's answer as the expressions see it (ResponseValue).
func ResponseFields() []string { return slices.Clone(knownFields[varResponse]) }

// ResponseValue is a vendor's answer as the HTTP backend's expressions see it: status (int), headers
// (lower-case names, values joined by ", "), cookies, body (its JSON value within the shape limits, else
// null) and text. Its strings may be resp.Body's own bytes: clone whatever outlives resp.
func ResponseValue(resp *backend.Response) map[string]any { return responseValue(resp) }

// BodyShapeProblem says how a JSON body exceeds the shape limits within which ResponseValue decodes it (it
// then sees a null body), or "" when it does not or is not JSON.
func BodyShapeProblem(body []byte) string { return bodyShapeProblem(body) }

// Output is what an expression must yield: the kinds of static type the checker accepts besides dyn, null and
// optionals (which are checked when evaluated), none meaning any; Name says it in messages ("a bool").
type Output struct {
	Kinds []types.Kind
	Name  string
}

// Outputs of the HTTP backend's own expressions.
var (
	YieldsBool   = Output{Kinds: []types.Kind{types.BoolKind}, Name: kindNames[yieldsBool]}
	YieldsString = Output{Kinds: []types.Kind{types.StringKind}, Name: kindNames[yieldsString]}
	YieldsAny    = Output{}
)

// Expression is one compiled expression, named in every message by the spec field it came from.
type Expression struct{ x *expression }

// Compile parses and type-checks src in env, as the HTTP backend compiles its own expressions. A mistake is a
// KindInvalidConfig error that names field, the line and column, and the CEL message; so is a selection of a
// field that a map variable does not have (fields lists, by variable name, the fields it has), and a static
// type out does not accept. opts are added to the cost limit and interruption of every program; an error in
// building the program (a constant regular expression that does not compile, say) is KindInvalidConfig too.
// An empty src gives a nil Expression.
func Compile(env *cel.Env, field, src string, out Output, fields map[string][]string, opts ...cel.ProgramOption) (*Expression, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	checked, issues := env.Compile(src)
	if issues != nil && issues.Err() != nil {
		return nil, compileError(field, issues.Errors())
	}
	if err := checkSelections(field, checked, fields); err != nil {
		return nil, err
	}
	if err := checkOutput(field, checked.OutputType(), out); err != nil {
		return nil, err
	}
	prg, err := env.Program(checked, append([]cel.ProgramOption{cel.CostLimit(costLimit), cel.InterruptCheckFrequency(interruptEvery)}, opts...)...)
	if err != nil {
		return nil, backend.Errorf(backend.KindInvalidConfig, "CEL expression %s is not valid: %v", field, err)
	}
	return &Expression{x: &expression{field: field, prg: prg}}, nil
}

// checkSelections is checkFieldNames over the variables and fields given: it rejects a selection of a field
// that a map variable does not have, such as response.stauts, which the checker lets through.
func checkSelections(field string, checked *cel.Ast, fields map[string][]string) error {
	var bad error
	ast.PreOrderVisit(ast.NavigateAST(checked.NativeRep()), ast.NewExprVisitor(func(e ast.Expr) {
		if bad != nil || e.Kind() != ast.SelectKind || e.AsSelect().Operand().Kind() != ast.IdentKind {
			return
		}
		variable := e.AsSelect().Operand().AsIdent()
		known, ok := fields[variable]
		if !ok || slices.Contains(known, e.AsSelect().FieldName()) {
			return
		}
		loc := checked.NativeRep().SourceInfo().GetStartLocation(e.ID())
		bad = backend.Errorf(backend.KindInvalidConfig, "CEL expression %s is not valid: line %d, column %d: %s has no field %q (it has %s)",
			field, loc.Line(), loc.Column()+1, variable, e.AsSelect().FieldName(), strings.Join(known, ", "))
	}))
	return bad
}

// checkOutput is checkOutputType for an Output.
func checkOutput(field string, t *cel.Type, out Output) error {
	if len(out.Kinds) == 0 || t.Kind() == types.DynKind || t.Kind() == types.NullTypeKind ||
		t.Kind() == types.OpaqueKind && t.TypeName() == "optional_type" || slices.Contains(out.Kinds, t.Kind()) {
		return nil
	}
	return backend.Errorf(backend.KindInvalidConfig, "CEL expression %s must yield %s, but yields %s", field, out.Name, t.String())
}

// Field is the spec field the expression came from.
func (x *Expression) Field() string { return x.x.field }

// Eval evaluates the expression over vars within the cost and time limits; an empty optional yields null.
// Its errors are KindTransient *backend.Error values that name the field: the vendor's answer was not what
// the expression expects.
func (x *Expression) Eval(ctx context.Context, vars map[string]any) (ref.Val, error) {
	return x.x.eval(ctx, vars)
}

// EvalBool evaluates a condition; a nil Expression yields def.
func (x *Expression) EvalBool(ctx context.Context, vars map[string]any, def bool) (bool, error) {
	if x == nil {
		return def, nil
	}
	return x.x.evalBool(ctx, vars, def)
}

// EvalOn is Eval for an expression over something other than a vendor's answer: its failures say that it
// failed on input ("the task") and are of kind, but for a cancelled ctx, which stays KindTransient.
func (x *Expression) EvalOn(ctx context.Context, vars map[string]any, input string, kind backend.ErrorKind) (ref.Val, error) {
	v, err := x.x.eval(ctx, vars)
	if err == nil || ctx.Err() != nil {
		return v, err
	}
	e, ok := backend.AsError(err)
	if !ok {
		return nil, err
	}
	return nil, &backend.Error{Kind: kind, Message: strings.Replace(e.Message, "failed on the vendor's answer", "failed on "+input, 1)}
}

// Describe names a value's type, with the value itself when it is short: "the string \"half\"", "a map".
func Describe(v ref.Val) string { return describe(v) }

// Placeholders returns the names of the {name} placeholders of a template, in order.
func Placeholders(tmpl string) []string {
	var names []string
	for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
		names = append(names, m[1])
	}
	return names
}

// CheckPathTemplate refuses, with a KindInvalidConfig error naming field, a path template whose literal text
// is not written percent-encoded, as it is sent.
func CheckPathTemplate(field, tmpl string) error { return checkPathTemplate(field, tmpl) }

// ExpandPath fills the placeholders of a path template, as spec.http.path is filled, from parameters ({taskID}
// is a parameter like any other here): before the "?" each value is one escaped path segment
// (backend.PathSegment, whose KindTerminal error names a value a server may read as a dot segment), after it
// a query-escaped value. It returns the path with its query, ready to append to a base URL. A placeholder
// without a value is an error: check Placeholders first to say where to set it.
func ExpandPath(tmpl string, parameters map[string]string) (string, error) {
	path, query, err := expandURL(tmpl, parameters[taskIDPlaceholder], parameters)
	if err != nil {
		return "", err
	}
	if query != "" {
		path += "?" + query
	}
	return path, nil
}

// ValidHeaderName reports whether name is an HTTP header field name (an RFC 9110 token).
func ValidHeaderName(name string) bool { return validHeaderName(name) }
