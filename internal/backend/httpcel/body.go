package httpcel

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// The shape limits of a JSON body: the expressions need the body decoded whole into generic values (maps,
// lists), which costs tens of bytes per value however small the value is in the body (an object of one key
// is a map of a few hundred bytes), so a body of more values or deeper nesting is refused before it is
// decoded. Right under these limits, decoding the worst shape and writing it all out as the result costs
// about 3.3 MiB (TestWorstShapedAnswersCostBoundedMemory); 30,000 values cost 4 MiB. A task-status answer
// has a few dozen values, and 64 levels is deeper than any API nests.
const (
	maxBodyDepth  = 64
	maxBodyValues = 25_000
)

// checkBodyShape refuses a JSON body over the shape limits with a transient error that names the limit. A
// body that is not JSON is left alone: the expressions see it as text.
func checkBodyShape(resp *backend.Response) error {
	if problem := bodyShapeProblem(resp.Body); problem != "" {
		return backend.BadBody(resp, problem)
	}
	return nil
}

// checkLoginBodyShape is checkBodyShape for a login answer, whose start is not quoted: it may hold the
// session token.
func checkLoginBodyShape(resp *backend.Response) error {
	if problem := bodyShapeProblem(resp.Body); problem != "" {
		return backend.Errorf(backend.KindTransient, "vendor answered HTTP %d with a body that is not the documented shape (%s)", resp.StatusCode, problem)
	}
	return nil
}

func bodyShapeProblem(body []byte) string {
	if !json.Valid(body) {
		return ""
	}
	if problem := backend.JSONShapeProblem(body, maxBodyDepth, maxBodyValues); problem != "" {
		return "JSON " + problem + ", more than the HTTP backend decodes"
	}
	return ""
}

// bodyString is the body as a string without a copy. Response.Body is never changed once read, so the
// string stays valid; callers must not let it (or a part of it) outlive the poll, since it would keep the
// whole body alive: strings that leave the backend are cloned.
func bodyString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// decodeBody decodes a JSON body within the shape limits into the values encoding/json would give (maps,
// lists, float64, strings, bools, nil), but with the strings that need no unescaping referencing the body
// instead of copying it, and with every list allocated at its final length. ok is false for a body that is
// not JSON, or whose numbers do not fit a float64 (encoding/json refuses those too).
func decodeBody(body []byte) (v any, ok bool) {
	if !json.Valid(body) || backend.JSONShapeProblem(body, maxBodyDepth, maxBodyValues) != "" {
		return nil, false
	}
	d := bodyDecoder{}
	v = d.value(body)
	return v, !d.failed
}

type bodyDecoder struct {
	// pending holds the elements of the lists being decoded, so that each list is allocated once, at its
	// length.
	pending []any
	failed  bool
}

// emptyObject is every {} of a body: nothing writes to the decoded body, and one map is cheaper than many.
var emptyObject = map[string]any{}

func (d *bodyDecoder) value(raw []byte) any {
	switch backend.JSONKind(raw) {
	case '{':
		var m map[string]any
		_ = backend.EachJSONMember(raw, func(key, value []byte) error {
			if m == nil {
				m = make(map[string]any)
			}
			m[d.text(key)] = d.value(value)
			return nil
		})
		if m == nil {
			return emptyObject
		}
		return m
	case '[':
		start := len(d.pending)
		_ = backend.EachJSONElement(raw, func(element []byte) error {
			d.pending = append(d.pending, d.value(element))
			return nil
		})
		list := make([]any, len(d.pending)-start)
		copy(list, d.pending[start:])
		clear(d.pending[start:])
		d.pending = d.pending[:start]
		return list
	case '"':
		s := trimJSON(raw)
		return d.text(s[1 : len(s)-1])
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	}
	f, err := strconv.ParseFloat(bodyString(trimJSON(raw)), 64)
	if err != nil {
		d.failed = true
	}
	return f
}

// text is the text of a JSON string's content: the body's own bytes when it needs no unescaping.
func (d *bodyDecoder) text(content []byte) string {
	if !hasEscapes(content) && utf8.Valid(content) {
		return bodyString(content)
	}
	quoted := make([]byte, 0, len(content)+2)
	quoted = append(append(append(quoted, '"'), content...), '"')
	// Unescaping never lengthens the text, but each invalid byte becomes a 3-byte U+FFFD.
	return backend.JSONText(quoted, 3*len(content))
}

func hasEscapes(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

func trimJSON(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
