package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Reading vendor JSON in place. A body may be up to MaxBodyBytes of any shape, and decoding it whole into Go
// values costs a multiple of its size (an array of a million empty objects becomes a million structs), so the
// vendor packages walk the body's bytes instead: these functions hand out sub-slices of the body and decode
// only the few values a vendor package keeps. They allocate nothing themselves, and expect valid JSON (check
// the body once with json.Valid, which allocates nothing either); on invalid JSON they stop early, never panic.

// MaxTextBytes is the most of one JSON string a vendor package keeps: every text the operator shows is one
// line of a few hundred characters, and a session token is a few KiB at most.
const MaxTextBytes = 64 << 10

var (
	errNotJSONObject = errors.New("not a JSON object")
	errNotJSONArray  = errors.New("not a JSON array")
)

// EachJSONMember calls fn with every member of the JSON object value, in order: its key as written between
// the quotes (escapes and all; see JSONKeyIs) and its value. It stops at the first error fn returns, and
// fails when value is not an object.
func EachJSONMember(value []byte, fn func(key, value []byte) error) error {
	i := skipJSONSpace(value, 0)
	if i >= len(value) || value[i] != '{' {
		return errNotJSONObject
	}
	i = skipJSONSpace(value, i+1)
	for i < len(value) && value[i] == '"' {
		keyEnd := skipJSONString(value, i)
		key := value[i+1 : max(keyEnd-1, i+1)]
		i = skipJSONSpace(value, keyEnd)
		if i >= len(value) || value[i] != ':' {
			return errNotJSONObject
		}
		i = skipJSONSpace(value, i+1)
		end := skipJSONValue(value, i)
		if err := fn(key, value[i:end]); err != nil {
			return err
		}
		i = skipJSONSpace(value, end)
		if i >= len(value) || value[i] != ',' {
			break
		}
		i = skipJSONSpace(value, i+1)
	}
	return nil
}

// EachJSONElement calls fn with every element of the JSON array value, in order. It stops at the first error
// fn returns, and fails when value is not an array.
func EachJSONElement(value []byte, fn func(element []byte) error) error {
	i := skipJSONSpace(value, 0)
	if i >= len(value) || value[i] != '[' {
		return errNotJSONArray
	}
	i = skipJSONSpace(value, i+1)
	for i < len(value) && value[i] != ']' {
		end := skipJSONValue(value, i)
		if end == i {
			break // not JSON: no value starts here
		}
		if err := fn(value[i:end]); err != nil {
			return err
		}
		i = skipJSONSpace(value, end)
		if i >= len(value) || value[i] != ',' {
			break
		}
		i = skipJSONSpace(value, i+1)
	}
	return nil
}

// JSONKind returns the first byte of a JSON value ('{', '[', '"', 'n', 't', 'f', or a number's first byte),
// 0 for an empty one.
func JSONKind(value []byte) byte {
	if i := skipJSONSpace(value, 0); i < len(value) {
		return value[i]
	}
	return 0
}

// IsJSONNull reports whether a value is absent or null, which encoding/json reads as "leave it unset".
func IsJSONNull(value []byte) bool {
	v := bytes.TrimSpace(value)
	return len(v) == 0 || string(v) == "null"
}

// JSONKeyIs reports whether a key as EachJSONMember gives it is name, matched the way encoding/json matches a
// struct field: exactly, or else ignoring case. name must be at most 32 bytes, which keeps the comparison off
// the heap.
func JSONKeyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		var buf [96]byte
		key = appendJSONUnquoted(buf[:0], key, len(buf))
	}
	return string(key) == name || bytes.EqualFold(key, []byte(name))
}

// JSONKeyEquals reports whether a key as EachJSONMember gives it is exactly name, as a map key decoded by
// encoding/json would be.
func JSONKeyEquals(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		var buf [96]byte
		key = appendJSONUnquoted(buf[:0], key, len(buf))
	}
	return string(key) == name
}

// JSONText decodes a JSON value as text of at most maxBytes bytes (longer text is cut at a character
// boundary): a string unquoted, with invalid UTF-8 as U+FFFD as encoding/json reads it; null as ""; any other
// value as written. It allocates only the text it returns.
func JSONText(value []byte, maxBytes int) string {
	v := bytes.TrimSpace(value)
	switch {
	case len(v) >= 2 && v[0] == '"':
		content := v[1 : len(v)-1]
		if len(content) <= maxBytes && bytes.IndexByte(content, '\\') < 0 && utf8.Valid(content) {
			return string(content)
		}
		return string(appendJSONUnquoted(make([]byte, 0, min(len(content), maxBytes+utf8.UTFMax)), content, maxBytes))
	case string(v) == "null":
		return ""
	}
	v = v[:min(len(v), maxBytes)]
	return string(v)
}

// AppendJSONText is JSONText appending to dst, for a caller that compares the text with a word and keeps it
// in a buffer of its own.
func AppendJSONText(dst, value []byte, maxBytes int) []byte {
	v := bytes.TrimSpace(value)
	switch {
	case len(v) >= 2 && v[0] == '"':
		return appendJSONUnquoted(dst, v[1:len(v)-1], len(dst)+maxBytes)
	case string(v) == "null":
		return dst
	}
	return append(dst, v[:min(len(v), maxBytes)]...)
}

// JSONNumber reads a JSON number, or a number written as a JSON string as some vendors send them. ok is false
// for anything else, and for a number with more than 32 characters or an exponent of more than two digits: no
// vendor sends one, and refusing them keeps strconv from failing, which would allocate an error.
func JSONNumber(value []byte) (f float64, ok bool) {
	v := bytes.TrimSpace(value)
	if len(v) >= 2 && v[0] == '"' {
		v = bytes.TrimSpace(v[1 : len(v)-1])
	}
	if len(v) > 32 || !isDecimal(v) {
		return 0, false
	}
	// The conversion of at most 32 bytes is on the stack.
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

// isDecimal reports whether b is [+-]digits[.digits][e[+-]digits] with at least one mantissa digit and at most
// two exponent digits, which strconv.ParseFloat always parses.
func isDecimal(b []byte) bool {
	i := 0
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		digits++
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 || exp > 2 {
			return false
		}
	}
	return i == len(b)
}

// BoundedString is a JSON string field decoded with at most MaxTextBytes bytes kept, so that a vendor cannot
// make one field cost as much as the whole body. Like a string field, it takes null as "leave unset" and
// refuses any other kind of value.
type BoundedString string

func (s *BoundedString) UnmarshalJSON(b []byte) error {
	switch JSONKind(b) {
	case 'n':
		return nil
	case '"':
		*s = BoundedString(JSONText(b, MaxTextBytes))
		return nil
	}
	return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[string]()}
}

// CompactJSON returns a valid JSON value without insignificant space: value itself when it has none (so a
// result can reference the body it came from), else one copy of exactly the compact size.
func CompactJSON(value []byte) json.RawMessage {
	spaces := 0
	for i := 0; i < len(value); {
		switch value[i] {
		case '"':
			i = skipJSONString(value, i)
			continue
		case ' ', '\t', '\n', '\r':
			spaces++
		}
		i++
	}
	if spaces == 0 {
		return value
	}
	// Not json.Compact: it grows its buffer to the input size first, which allocates about three times it.
	return compactInto(make([]byte, 0, len(value)-spaces), value)
}

// CompactJSONInPlace is CompactJSON for a buffer the caller owns and no longer needs as it is: it compacts
// value over itself, copying nothing.
func CompactJSONInPlace(value []byte) json.RawMessage { return compactInto(value[:0], value) }

// compactInto appends value without insignificant space to out, which may be value[:0]: it is written no
// faster than value is read.
func compactInto(out, value []byte) []byte {
	for i := 0; i < len(value); {
		switch c := value[i]; c {
		case '"':
			end := skipJSONString(value, i)
			out = append(out, value[i:end]...)
			i = end
			continue
		case ' ', '\t', '\n', '\r':
		default:
			out = append(out, c)
		}
		i++
	}
	return out
}

// QuoteJSON writes text as a JSON string, as json.Marshal writes a Go string (invalid UTF-8 as U+FFFD, <, >
// and & escaped), into one buffer sized for it.
func QuoteJSON(text []byte) json.RawMessage {
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, len(text)+len(text)/8+2)
	out = append(out, '"')
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, '\\', 'n')
			case c == '\r':
				out = append(out, '\\', 'r')
			case c == '\t':
				out = append(out, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			out = append(out, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			out = append(out, text[i:i+size]...)
		}
		i += size
	}
	return append(out, '"')
}

// JSONShapeProblem says how a valid JSON body exceeds a bound on its nesting depth or on its number of values
// (every value counts, and every object key), or "" when it does not. It allocates nothing unless it has a
// problem to describe. A body that must be decoded whole into generic values is checked with it first:
// decoding costs tens of bytes per value, however small each value is in the body.
func JSONShapeProblem(body []byte, maxDepth, maxValues int) string {
	depth, values := 0, 0
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case '"':
			values++
			i = skipJSONString(body, i)
		case '{', '[':
			values++
			if depth++; depth > maxDepth {
				return fmt.Sprintf("nested deeper than %d levels", maxDepth)
			}
			i++
		case '}', ']':
			depth--
			i++
		case ' ', '\t', '\n', '\r', ',', ':':
			i++
		default:
			values++ // a number, true, false or null
			i = skipJSONValue(body, i)
		}
		if values > maxValues {
			return fmt.Sprintf("more than %d values", maxValues)
		}
	}
	return ""
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipJSONString returns the index after the string that starts at b[i] == '"'.
func skipJSONString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipJSONValue returns the index after the value that starts at b[i]; i itself when no value starts there.
func skipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipJSONString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipJSONString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	case ',', ':', '}', ']':
		return i
	}
	for i < len(b) && !endsJSONLiteral(b[i]) {
		i++
	}
	return i
}

func endsJSONLiteral(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', ']', '}':
		return true
	}
	return false
}

// appendJSONUnquoted appends the text of a JSON string's content (between the quotes) to dst, stopping
// before dst would grow past maxLen.
func appendJSONUnquoted(dst, s []byte, maxLen int) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		var r rune
		size := 1
		switch {
		case c == '\\' && i+1 < len(s):
			size = 2
			switch s[i+1] {
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				r, size = utf8.RuneError, min(6, len(s)-i)
				if v, ok := hex4(s[i+2 : i+size]); ok {
					r = v
					if utf16.IsSurrogate(r) {
						r = utf8.RuneError
						if i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
							if lo, ok := hex4(s[i+8 : i+12]); ok {
								if dec := utf16.DecodeRune(v, lo); dec != utf8.RuneError {
									r, size = dec, 12
								}
							}
						}
					}
				}
			default:
				r = rune(s[i+1])
			}
		case c < utf8.RuneSelf:
			r = rune(c)
		default:
			r, size = utf8.DecodeRune(s[i:])
		}
		if len(dst)+utf8.RuneLen(r) > maxLen {
			break
		}
		dst = utf8.AppendRune(dst, r)
		i += size
	}
	return dst
}

func hex4(b []byte) (rune, bool) {
	if len(b) != 4 {
		return 0, false
	}
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
