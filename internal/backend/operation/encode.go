package operation

import (
	"bytes"
	"fmt"
	"math"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/httpcel"
)

// MaxEncodedBody bounds the encoded body of a start request: twice the largest task body (bodyFrom, 1 MiB),
// so that a body expression can wrap or extend the task's body, but never repeat it into a request that
// holds the operator's memory or that the vendor refuses for its size.
const MaxEncodedBody = 2 << 20

// maxNesting bounds how deeply a body's maps and lists nest: deeper than any API takes, shallow enough that
// walking one costs little stack.
const maxNesting = 256

// encodeError says why a body cannot be encoded; the caller names the expression.
type encodeError struct{ msg string }

func (e *encodeError) Error() string { return e.msg }

func problemf(format string, args ...any) error {
	return &encodeError{msg: fmt.Sprintf(format, args...)}
}

var errTooLarge = problemf("it is larger than %d bytes (2 MiB) once encoded", MaxEncodedBody)

// encode encodes what the body expression yielded: null is no body, a string (or bytes) is sent as it is,
// and a map or list is encoded per contentType. It returns the body and its Content-Type.
func encode(v ref.Val, contentType v1alpha1.SubmitContentType) ([]byte, string, error) {
	if v == nil || v.Type() == types.NullType {
		return nil, "", nil
	}
	switch t := v.(type) {
	case types.String, types.Bytes:
		if contentType == v1alpha1.ContentTypeMultipart {
			return nil, "", problemf("it is %s, but a multipart form is made of fields: yield a map", kindOf(v))
		}
		var raw []byte
		if s, ok := t.(types.String); ok {
			raw = []byte(s)
		} else {
			raw = []byte(t.(types.Bytes))
		}
		if len(raw) > MaxEncodedBody {
			return nil, "", errTooLarge
		}
		return raw, string(contentType), nil
	case traits.Mapper, traits.Lister:
	default:
		return nil, "", problemf("it is %s; a body is a map, a list, a string or null", httpcel.Describe(v))
	}
	switch contentType {
	case v1alpha1.ContentTypeForm:
		body, err := encodeForm(v)
		return body, string(contentType), err
	case v1alpha1.ContentTypeMultipart:
		return encodeMultipart(v)
	}
	e := jsonEncoder{}
	if err := e.value(v); err != nil {
		return nil, "", err
	}
	return e.buf, string(v1alpha1.ContentTypeJSON), nil
}

// jsonEncoder writes a CEL value as JSON, map keys sorted, within MaxEncodedBody: it stops as soon as the
// body is larger, so that an expression that repeats the task's body many times costs no more than the
// limit.
type jsonEncoder struct {
	buf []byte
	// at is where the value being written is (map keys and list indexes), for messages.
	at []any
}

func (e *jsonEncoder) value(v ref.Val) error {
	if len(e.buf) > MaxEncodedBody {
		return errTooLarge
	}
	if len(e.at) > maxNesting {
		return problemf("it nests deeper than %d levels", maxNesting)
	}
	switch t := v.(type) {
	case types.String:
		if len(e.buf)+len(t) > MaxEncodedBody {
			return errTooLarge
		}
		e.buf = append(e.buf, backend.QuoteJSON([]byte(t))...)
		return nil
	case types.Timestamp, types.Duration:
		text, _, _ := scalarText(v)
		e.buf = append(e.buf, backend.QuoteJSON([]byte(text))...)
		return nil
	case types.Bool:
		e.buf = strconv.AppendBool(e.buf, bool(t))
		return nil
	case types.Int:
		e.buf = strconv.AppendInt(e.buf, int64(t), 10)
		return nil
	case types.Uint:
		e.buf = strconv.AppendUint(e.buf, uint64(t), 10)
		return nil
	case types.Double:
		if math.IsNaN(float64(t)) || math.IsInf(float64(t), 0) {
			return problemf("%s is %v, which JSON cannot hold", where(e.at), float64(t))
		}
		e.buf = appendFloat(e.buf, float64(t))
		return nil
	case types.Null:
		e.buf = append(e.buf, "null"...)
		return nil
	case *types.Optional:
		if !t.HasValue() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.value(t.GetValue())
	case *types.Err:
		return problemf("%s cannot be read: %v", where(e.at), t)
	case types.Bytes:
		return problemf("%s is bytes, which JSON cannot hold: make it text, e.g. with base64.encode()", where(e.at))
	case traits.Mapper:
		keys, err := sortedKeys(t, e.at)
		if err != nil {
			return err
		}
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if len(e.buf)+len(k) > MaxEncodedBody {
				return errTooLarge
			}
			e.buf = append(append(e.buf, backend.QuoteJSON([]byte(k))...), ':')
			e.at = append(e.at, k)
			if err := e.value(t.Get(types.String(k))); err != nil {
				return err
			}
			e.at = e.at[:len(e.at)-1]
		}
		e.buf = append(e.buf, '}')
		return nil
	case traits.Lister:
		n, ok := t.Size().(types.Int)
		if !ok {
			return problemf("%s is a list whose size cannot be read", where(e.at))
		}
		e.buf = append(e.buf, '[')
		for i := range int64(n) {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.at = append(e.at, int(i))
			if err := e.value(t.Get(types.Int(i))); err != nil {
				return err
			}
			e.at = e.at[:len(e.at)-1]
		}
		e.buf = append(e.buf, ']')
		return nil
	}
	return problemf("%s is %s, which cannot be written as JSON", where(e.at), kindOf(v))
}

// sortedKeys returns the keys of a map, which must be strings, sorted.
func sortedKeys(m traits.Mapper, at []any) ([]string, error) {
	var keys []string
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		s, ok := k.(types.String)
		if !ok {
			return nil, problemf("%s has the key %s; keys must be strings", where(at), httpcel.Describe(k))
		}
		keys = append(keys, string(s))
	}
	sort.Strings(keys)
	return keys, nil
}

// where names a place in the body for a message: "the body", "body.files[2]", `body["a b"]`.
func where(at []any) string {
	if len(at) == 0 {
		return "the body"
	}
	var b strings.Builder
	b.WriteString("body")
	for _, step := range at {
		switch s := step.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		case string:
			if isIdentifier(s) {
				b.WriteString("." + s)
			} else {
				fmt.Fprintf(&b, "[%q]", backend.Truncate(s, 64))
			}
		}
	}
	return b.String()
}

func isIdentifier(s string) bool {
	for i, r := range s {
		letter := r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}

// kindOf names the type of a value for a message, without the value.
func kindOf(v ref.Val) string {
	switch v.(type) {
	case types.Bytes:
		return "bytes"
	case traits.Mapper:
		return "a map"
	case traits.Lister:
		return "a list"
	}
	return "a " + v.Type().TypeName()
}

// scalarText returns the text a form field carries for a scalar: a string as it is, a number in its JSON
// form, true or false, a timestamp in RFC 3339, a duration as CEL writes it. ok is false for what is not a
// scalar; err is set for a number that has no text (NaN, infinity).
func scalarText(v ref.Val) (text string, ok bool, err error) {
	switch t := v.(type) {
	case types.String:
		return string(t), true, nil
	case types.Bool:
		return strconv.FormatBool(bool(t)), true, nil
	case types.Int:
		return strconv.FormatInt(int64(t), 10), true, nil
	case types.Uint:
		return strconv.FormatUint(uint64(t), 10), true, nil
	case types.Double:
		if math.IsNaN(float64(t)) || math.IsInf(float64(t), 0) {
			return "", true, problemf("%v is not a number a form can carry", float64(t))
		}
		return string(appendFloat(nil, float64(t))), true, nil
	case types.Timestamp:
		return t.Time.UTC().Format(time.RFC3339Nano), true, nil
	case types.Duration:
		return t.String(), true, nil
	}
	return "", false, nil
}

// appendFloat writes f as encoding/json writes a float64: whole numbers without a fraction or exponent
// below 1e21, exponents for the very large and very small.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// fields returns the fields of a form body, sorted by name, leaving out null values.
func fields(v ref.Val, form string) ([]string, traits.Mapper, error) {
	m, ok := v.(traits.Mapper)
	if !ok {
		return nil, nil, problemf("it is %s, but %s is made of fields: yield a map", kindOf(v), form)
	}
	names, err := sortedKeys(m, nil)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		if name == "" {
			return nil, nil, problemf("it has a field with no name")
		}
		if i := strings.IndexFunc(name, unicode.IsControl); i >= 0 || !utf8.ValidString(name) {
			return nil, nil, problemf("the field name %q holds a control character or invalid UTF-8", backend.Truncate(name, 64))
		}
	}
	return names, m, nil
}

// unwrap returns the value of an optional, and null for an empty one.
func unwrap(v ref.Val) ref.Val {
	if opt, ok := v.(*types.Optional); ok {
		if !opt.HasValue() {
			return types.NullValue
		}
		return opt.GetValue()
	}
	return v
}

// member is the value of a map's key, null when it has none.
func member(m traits.Mapper, key string) ref.Val {
	if v, found := m.Find(types.String(key)); found {
		return v
	}
	return types.NullValue
}

func isNull(v ref.Val) bool { return v == nil || v.Type() == types.NullType }

// encodeForm writes a map of scalars as application/x-www-form-urlencoded, fields sorted by name; a null
// field is left out. A map or list value is refused: a form has no way to nest.
func encodeForm(v ref.Val) ([]byte, error) {
	names, m, err := fields(v, "a form")
	if err != nil {
		return nil, err
	}
	var buf []byte
	for _, name := range names {
		value := unwrap(m.Get(types.String(name)))
		if isNull(value) {
			continue
		}
		text, ok, err := scalarText(value)
		if err != nil {
			return nil, problemf("field %q: %v", name, err)
		}
		if !ok {
			return nil, problemf("field %q is %s, but a form field holds a string, a number or a bool (multipart/form-data holds files; JSON nests)", name, kindOf(value))
		}
		if len(buf)+len(name)+len(text) > MaxEncodedBody {
			return nil, errTooLarge
		}
		if len(buf) > 0 {
			buf = append(buf, '&')
		}
		buf = append(append(append(buf, url.QueryEscape(name)...), '='), url.QueryEscape(text)...)
		if len(buf) > MaxEncodedBody {
			return nil, errTooLarge
		}
	}
	if buf == nil {
		buf = []byte{}
	}
	return buf, nil
}

// encodeMultipart writes a map as multipart/form-data, fields sorted by name: a scalar is a text field, a map
// {filename, content[, contentType]} a file part, a list one part of the same name per element; a null field
// is left out.
func encodeMultipart(v ref.Val) ([]byte, string, error) {
	names, m, err := fields(v, "a multipart form")
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, name := range names {
		value := unwrap(m.Get(types.String(name)))
		list, isList := value.(traits.Lister)
		if !isList {
			if err := writePart(w, &buf, name, value); err != nil {
				return nil, "", err
			}
			continue
		}
		n, _ := list.Size().(types.Int)
		for i := range int64(n) {
			element := unwrap(list.Get(types.Int(i)))
			if _, nested := element.(traits.Lister); nested {
				return nil, "", problemf("field %q holds a list in a list; a multipart form has no way to nest", name)
			}
			if err := writePart(w, &buf, name, element); err != nil {
				return nil, "", err
			}
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", problemf("%v", err)
	}
	if buf.Len() > MaxEncodedBody {
		return nil, "", errTooLarge
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// The keys of a file part's map.
const (
	fileName        = "filename"
	fileContent     = "content"
	fileContentType = "contentType"
)

func writePart(w *multipart.Writer, buf *bytes.Buffer, name string, value ref.Val) error {
	if isNull(value) {
		return nil
	}
	if text, ok, err := scalarText(value); ok {
		if err != nil {
			return problemf("field %q: %v", name, err)
		}
		if buf.Len()+len(text) > MaxEncodedBody {
			return errTooLarge
		}
		part, err := w.CreateFormField(name)
		if err == nil {
			_, err = part.Write([]byte(text))
		}
		return err
	}
	file, ok := value.(traits.Mapper)
	if !ok {
		return problemf("field %q is %s, but a multipart field holds a string, a number, a bool or a file {filename, content}", name, kindOf(value))
	}
	keys, err := sortedKeys(file, nil)
	if err != nil {
		return problemf("field %q: %v", name, err)
	}
	for _, k := range keys {
		if k != fileName && k != fileContent && k != fileContentType {
			return problemf("field %q is a map with the key %q, but a file part is {filename, content} and may have a contentType", name, backend.Truncate(k, 64))
		}
	}
	filename, ok := unwrap(member(file, fileName)).(types.String)
	if !ok || filename == "" {
		return problemf("field %q is a map, but not a file: a file part needs a filename (a string) and its content", name)
	}
	if strings.IndexFunc(string(filename), unicode.IsControl) >= 0 || !utf8.ValidString(string(filename)) {
		return problemf("field %q: the filename %q holds a control character or invalid UTF-8", name, backend.Truncate(string(filename), 64))
	}
	var content []byte
	switch c := unwrap(member(file, fileContent)).(type) {
	case types.String:
		if buf.Len()+len(c) > MaxEncodedBody {
			return errTooLarge
		}
		content = []byte(c)
	case types.Bytes:
		content = c
	default:
		return problemf("field %q is a file whose content is not a string or bytes", name)
	}
	contentType := "application/octet-stream"
	if ct := unwrap(member(file, fileContentType)); !isNull(ct) {
		s, ok := ct.(types.String)
		mediaType, params, err := mime.ParseMediaType(string(s))
		if !ok || err != nil {
			return problemf("field %q is a file whose contentType is not a media type such as text/csv", name)
		}
		if contentType = mime.FormatMediaType(mediaType, params); contentType == "" {
			return problemf("field %q is a file whose contentType is not a media type such as text/csv", name)
		}
	}
	if buf.Len()+len(content) > MaxEncodedBody {
		return errTooLarge
	}
	header := textproto.MIMEHeader{}
	header.Set("Content-Disposition", multipart.FileContentDisposition(name, string(filename)))
	header.Set("Content-Type", contentType)
	part, err := w.CreatePart(header)
	if err == nil {
		_, err = part.Write(content)
	}
	return err
}
