package backend

import (
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOneLine(t *testing.T) {
	long := strings.Repeat("é", 2000)
	tests := map[string]struct {
		in   string
		max  int
		want string
	}{
		"short text is kept":             {in: "Task failed", max: 10, want: "Task fail…"},
		"fits exactly":                   {in: "abc", max: 3, want: "abc"},
		"newlines and tabs become space": {in: " a\n\tb\r\nc  ", max: 100, want: "a b c"},
		"control characters go":          {in: "a\x00\x1bb", max: 100, want: "a b"},
		"invalid UTF-8 is replaced":      {in: "a\xffb", max: 100, want: "a\uFFFDb"},
		"a run of invalid bytes is one":  {in: "a\xff\xfe\x80b \xff", max: 100, want: "a\uFFFDb \uFFFD"},
		"long text is cut by characters": {in: long, max: 1024, want: strings.Repeat("é", 1023) + "…"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := OneLine(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("OneLine(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if n := utf8.RuneCountInString(got); n > tc.max {
				t.Errorf("OneLine gave %d characters, more than %d", n, tc.max)
			}
		})
	}
}

func TestOneLineOfHugeTextAllocatesLittle(t *testing.T) {
	huge := strings.Repeat("x\n", 50_000)
	allocs := testing.AllocsPerRun(10, func() { _ = OneLine(huge, MaxMessageLength) })
	if allocs > 3 {
		t.Errorf("OneLine of 100,000 characters made %.0f allocations, want at most 3", allocs)
	}
	if got := OneLine(huge, MaxMessageLength); utf8.RuneCountInString(got) != MaxMessageLength || !strings.HasSuffix(got, "…") {
		t.Errorf("OneLine of 100,000 characters gave %d characters, want %d ending with …", utf8.RuneCountInString(got), MaxMessageLength)
	}
}

func TestOneLineOfHugeInvalidTextCopiesOnlyWhatItKeeps(t *testing.T) {
	huge := strings.Repeat("x\xff\n", 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := OneLine(huge, MaxMessageLength)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("OneLine of 3 MiB of invalid UTF-8 allocated %d bytes, want at most 64 KiB", n)
	}
	if utf8.RuneCountInString(got) != MaxMessageLength || !strings.HasPrefix(got, "x\uFFFD x\uFFFD") {
		t.Errorf("OneLine gave %d characters starting %q", utf8.RuneCountInString(got), got[:min(len(got), 20)])
	}
}

func TestTruncateBytes(t *testing.T) {
	s := strings.Repeat("€", 500) // 3 bytes each
	got := TruncateBytes(s, 1024)
	if len(got) > 1024 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("TruncateBytes gave %d bytes (valid UTF-8: %v), want at most 1024 ending with …", len(got), utf8.ValidString(got))
	}
	if got := TruncateBytes("short", 1024); got != "short" {
		t.Errorf("TruncateBytes(short) = %q", got)
	}
}

func TestSnippetQuotesTheStartOfABodyOnOneLine(t *testing.T) {
	tests := map[string]struct {
		body []byte
		want string
	}{
		"short body":          {body: []byte("<html>502 Bad Gateway</html>"), want: "<html>502 Bad Gateway</html>"},
		"lines become spaces": {body: []byte("<html>\n  <p>login</p>\r\n</html>\n"), want: "<html> <p>login</p> </html>"},
		"binary junk":         {body: []byte("a\x00\xffb"), want: "a \uFFFDb"},
		"long body is cut":    {body: []byte(strings.Repeat("x", 1<<20)), want: strings.Repeat("x", SnippetLength-1) + "…"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Snippet(tc.body); got != tc.want {
				t.Errorf("Snippet(%q) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}
