package backend

import (
	"net/url"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// A task ID reaches the vendor as one segment of the task's path ("A task ID is always sent as data inside the
// task's path segment: it can never change which endpoint is called"). Escaping alone does not get there:
// vendors' servers and the proxies in front of them decode %2E and %2F, fold fullwidth dots (NFKC), cut ";"
// path parameters and take "\" for "/" before they resolve "." and "..". So a value that any such reading
// turns into a dot segment, or into no segment at all, is refused; every other value is sent escaped as one
// segment.

// PathSegment returns value escaped as one path segment (url.PathEscape: "/", "?", "#", "%", "\" and every
// byte outside ASCII are percent-encoded). It refuses, with a KindTerminal error that starts with name
// ("taskID", or a parameter), a value that is empty, that a server may read as holding a "." or ".."
// segment, or that it may read as no segment at all: nothing may be sent for it.
func PathSegment(name, value string) (string, error) {
	if value == "" {
		return "", Errorf(KindTerminal, "%s %q cannot be sent: it is empty", name, value)
	}
	if segment, found := dotOrNoSegmentIn(value); found {
		if segment == "" {
			return "", Errorf(KindTerminal, "%s %q cannot be sent: a server may read it as no path segment at all and ask for the collection instead of the task",
				name, value)
		}
		return "", Errorf(KindTerminal, "%s %q cannot be sent: a server may read the dot segment %q in it and leave the task's path",
			name, value, segment)
	}
	return url.PathEscape(value), nil
}

// TaskURL returns base with the fixed segments and then the task ID appended, each escaped as one segment,
// the task ID through PathSegment. Path and RawPath are set together, so that the request line carries the ID
// exactly as escaped here: an escaped "/" stays %2F and no path cleaning resolves anything away.
func TaskURL(base *url.URL, taskID string, fixed ...string) (*url.URL, error) {
	id, err := PathSegment("taskID", taskID)
	if err != nil {
		return nil, err
	}
	raw := strings.TrimSuffix(base.EscapedPath(), "/")
	for _, segment := range fixed {
		raw += "/" + url.PathEscape(segment)
	}
	raw += "/" + id
	path, err := url.PathUnescape(raw)
	if err != nil {
		// Unreachable: EscapedPath and PathEscape only write valid escapes.
		return nil, Errorf(KindTerminal, "taskID %q cannot be sent: %v", taskID, err)
	}
	u := *base
	u.Path, u.RawPath = path, raw
	return &u, nil
}

// dotOrNoSegmentIn looks at value as it is and after each round of percent-decoding, each reading folded by
// NFKC with the ideographic full stops taken for ".", split at "/" and "\", and with ";" path parameters cut
// off. It returns the first dot segment ("." or "..", or more dots) of a reading, or "" for a reading that
// has no segment but empty ones (a "/" alone, say, which a server may clean away).
func dotOrNoSegmentIn(value string) (segment string, found bool) {
	for reading, more := value, true; more; {
		folded := strings.Map(asciiDot, norm.NFKC.String(reading))
		named := false
		for _, segment := range strings.FieldsFunc(folded, isPathSeparator) {
			segment, _, _ = strings.Cut(segment, ";")
			if segment != "" && strings.Trim(segment, ".") == "" {
				return segment, true
			}
			named = named || segment != ""
		}
		if !named {
			return "", true
		}
		reading, more = percentDecodeOnce(reading)
	}
	return "", false
}

// asciiDot maps the ideographic full stops, which IDNA (RFC 3490 §3.1) reads as "." and NFKC does not fold,
// to ".". The fullwidth and small full stops and the one-, two- and three-dot leaders are folded by NFKC.
func asciiDot(r rune) rune {
	switch r {
	case '\u3002', '\uFF61':
		return '.'
	}
	return r
}

func isPathSeparator(r rune) bool { return r == '/' || r == '\\' }

// percentDecodeOnce decodes every valid %XX of s, leaving malformed ones as they are, as lenient servers do;
// more is false when there was nothing to decode. Each round makes s shorter, so repeating it ends.
func percentDecodeOnce(s string) (decoded string, more bool) {
	if !strings.Contains(s, "%") {
		return s, false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			more = true
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), more
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
