package backend

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on vendor text kept in a task's status (see the contract): a hostile or verbose vendor must not make
// a status too large for the API server to store, which would keep the task from ever reaching its phase.
const (
	// MaxMessageLength bounds status.message and every condition message, in characters.
	MaxMessageLength = 1024
	// MaxWordLength bounds status.vendorStatus and status.taskName, in characters.
	MaxWordLength = 256
)

// ellipsis ends text that was cut.
const ellipsis = "…"

// OneLine returns s as one line of at most maxChars characters: control characters and runs of white space
// become one space, invalid UTF-8 becomes U+FFFD, and longer text is cut, ending with "…".
func OneLine(s string, maxChars int) string {
	if isOneLine(s) {
		return Truncate(s, maxChars)
	}
	var b strings.Builder
	b.Grow(min(len(s), 4*maxChars+len(ellipsis)))
	// The text is read rune by rune rather than made valid first, so that a text as long as a body costs no
	// more than what is kept of it. A run of invalid bytes is one U+FFFD, as strings.ToValidUTF8 writes it.
	space, chars, invalid := false, 0, false
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		i += width
		if r == utf8.RuneError && width == 1 {
			if invalid {
				continue
			}
			invalid = true
		} else {
			invalid = false
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = chars > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			chars++
			space = false
		}
		b.WriteRune(r)
		chars++
		if chars > maxChars {
			break // enough to know it must be cut
		}
	}
	return Truncate(b.String(), maxChars)
}

// Truncate cuts s to at most maxChars characters, ending with "…" when it was cut. It keeps s as it is
// otherwise (for words the vendor gives verbatim, such as its status word).
func Truncate(s string, maxChars int) string {
	if len(s) <= maxChars || utf8.RuneCountInString(s) <= maxChars {
		return s
	}
	if maxChars <= 0 {
		return ""
	}
	cut, n := 0, 0
	for i := range s {
		if n == maxChars-1 {
			cut = i
			break
		}
		n++
	}
	return s[:cut] + ellipsis
}

// TruncateBytes cuts s to at most maxBytes bytes on a character boundary, ending with "…" when it was cut,
// for APIs that bound bytes rather than characters (an event's note).
func TruncateBytes(s string, maxBytes int) string {
	if len(s) <= maxBytes {
		return s
	}
	cut := max(maxBytes-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// isOneLine reports whether s is valid UTF-8 with no control characters and no white space but single spaces
// between words, so that OneLine can skip rebuilding it.
func isOneLine(s string) bool {
	if !utf8.ValidString(s) || strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.Contains(s, "  ") {
		return false
	}
	for _, r := range s {
		if r != ' ' && (unicode.IsSpace(r) || unicode.IsControl(r)) {
			return false
		}
	}
	return true
}

// SnippetLength is how many characters of a body Snippet quotes: enough to see who answered (a proxy's HTML
// page, a login form), short enough for a status message.
const SnippetLength = 80

// Snippet quotes the start of a vendor's body for a message: one line (see OneLine) of at most SnippetLength
// characters. Only the first bytes are read, so that a body of any size costs the same.
func Snippet(body []byte) string {
	return OneLine(string(body[:min(len(body), 4*(SnippetLength+1))]), SnippetLength)
}
