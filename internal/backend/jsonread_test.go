package backend

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestJSONTextReadsStringsAsEncodingJSONDoes(t *testing.T) {
	for _, in := range []string{`"plain"`, `"tab\tand \"quotes\" \\ \/"`, `"\u00e9\u4e16\ud83d\ude00"`, `"lone \ud83d surrogate"`,
		`"bad \ud83d\u0041 pair"`, "\"invalid \xff byte\"", `""`, ` "padded" `} {
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := JSONText([]byte(in), MaxTextBytes); got != want {
			t.Errorf("JSONText(%s) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{`null`: "", `12.5`: "12.", `true`: "tru", `"abcdef"`: "abc", `"\u00e9\u00e9"`: "é"} {
		if got := JSONText([]byte(in), 3); got != want {
			t.Errorf("JSONText(%s, 3) = %q, want %q", in, got, want)
		}
	}
}

func TestJSONKeyIsMatchesAsEncodingJSONDoes(t *testing.T) {
	for key, want := range map[string]bool{`taskName`: true, `TASKNAME`: true, `task\u004eame`: true, `taskNam`: false, `taskNames`: false} {
		if got := JSONKeyIs([]byte(key), "taskName"); got != want {
			t.Errorf("JSONKeyIs(%s) = %v", key, got)
		}
	}
}

func TestJSONReadersAllocateNothing(t *testing.T) {
	body := []byte(`{"a": [1, "2", {"b": null}], "task\u004eame": "x", "some quite long key of more than thirty-two bytes": true, "n": 1.5E12}`)
	allocs := testing.AllocsPerRun(100, func() {
		_ = EachJSONMember(body, func(key, value []byte) error {
			_ = JSONKeyIs(key, "taskName")
			_, _ = JSONNumber(value)
			var buf [16]byte
			_ = AppendJSONText(buf[:0], value, len(buf))
			return EachJSONElement(value, func([]byte) error { return nil })
		})
		_ = CompactJSON(body[1:2])
		_ = JSONShapeProblem(body, 64, 100)
	})
	if allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
}

func TestCompactJSONReferencesACompactValue(t *testing.T) {
	compact := []byte(`{"a":[1,"x y"]}`)
	if got := CompactJSON(compact); &got[0] != &compact[0] {
		t.Error("a compact value was copied")
	}
	if got := string(CompactJSON([]byte(" {\"a\" : [1, \"x y\"]}\n"))); got != string(compact) {
		t.Errorf("CompactJSON = %s", got)
	}
}

func TestJSONShapeProblemNamesTheLimit(t *testing.T) {
	for body, want := range map[string]string{
		`[[[1]]]`:                 "",
		`[[[[1]]]]`:               "nested deeper than 3 levels",
		`{"a":1,"b":"x"}`:         "",
		`{"a":1,"b":"x","c":nul}`: "more than 5 values",
		`"[[[[[[not nesting"`:     "",
	} {
		if got := JSONShapeProblem([]byte(body), 3, 5); got != want {
			t.Errorf("JSONShapeProblem(%s) = %q, want %q", body, got, want)
		}
	}
}

// shapeOf counts the values (keys included) and the depth of a decoded JSON value.
func shapeOf(v any, depth int) (values, deepest int) {
	values, deepest = 1, depth
	switch t := v.(type) {
	case map[string]any:
		deepest = depth + 1
		for _, e := range t {
			n, d := shapeOf(e, depth+1)
			values, deepest = values+n+1, max(deepest, d)
		}
	case []any:
		deepest = depth + 1
		for _, e := range t {
			n, d := shapeOf(e, depth+1)
			values, deepest = values+n, max(deepest, d)
		}
	}
	return values, deepest
}

func FuzzJSONShapeProblem(f *testing.F) {
	for _, seed := range []string{`[[[1]]]`, `{"a":[{},{}],"b":"x\"]"}`, `"s"`, `[1,true,null,-2.5e3]`, `{"a":{"b":{"c":{}}}}`, `[`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const maxDepth, maxValues = 4, 20
		problem := JSONShapeProblem(body, maxDepth, maxValues)
		var v any
		if json.Unmarshal(body, &v) != nil {
			return // only valid JSON is checked; invalid JSON must not panic
		}
		values, depth := shapeOf(v, 0)
		// Duplicate keys collapse when decoded, so the decoded count may be lower than the body's.
		if exceeds := depth > maxDepth || values > maxValues; exceeds && problem == "" {
			t.Fatalf("%q has %d values %d deep, and no problem", body, values, depth)
		}
		if depth <= maxDepth && problem != "" && strings.HasPrefix(problem, "nested") {
			t.Fatalf("%q is %d deep, but %s", body, depth, problem)
		}
	})
}

func FuzzJSONReaders(f *testing.F) {
	for _, seed := range []string{`{"a":[1,"2",{"b":null}],"c":"\u00e9\"x","d":1.5E12}`, `{}`, `{"a":{"a":{}}}`, `[{"x":1},2]`, `{"a" : "b" , "c":[ ]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// Never a panic, whatever the bytes.
		walk := func(value []byte) {
			_ = JSONText(value, 8)
			_, _ = JSONNumber(value)
			_ = EachJSONElement(value, func([]byte) error { return nil })
		}
		_ = EachJSONMember(body, func(key, value []byte) error { _ = JSONKeyIs(key, "a"); walk(value); return nil })
		walk(body)
		if !json.Valid(body) {
			return
		}
		var compacted bytes.Buffer
		if err := json.Compact(&compacted, body); err != nil {
			t.Fatal(err)
		}
		if got := CompactJSON(body); string(got) != compacted.String() {
			t.Fatalf("CompactJSON(%q) = %q, json.Compact %q", body, got, compacted.String())
		}
		var want map[string]json.RawMessage
		if json.Unmarshal(body, &want) != nil || want == nil {
			return
		}
		got := map[string][]byte{}
		if err := EachJSONMember(body, func(key, value []byte) error {
			got[JSONText([]byte(`"`+string(key)+`"`), 1<<20)] = value
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for k, raw := range want {
			if string(CompactJSON(got[k])) != string(CompactJSON(raw)) {
				t.Fatalf("member %q: %q, encoding/json %q", k, got[k], raw)
			}
			var s string
			if json.Unmarshal(raw, &s) == nil && utf8.ValidString(k) {
				if text := JSONText(got[k], 1<<20); text != s {
					t.Fatalf("member %q: text %q, encoding/json %q", k, text, s)
				}
			}
		}
	})
}

func TestQuoteJSONWritesAsJSONMarshal(t *testing.T) {
	for _, text := range []string{"plain", `"quoted" \ back`, "line\nbreak\ttab\r\x01", "<a href='x'>&</a>", "\u2028\u2029 é 世 😀", "bad \xff\xfe utf-8", ""} {
		want, _ := json.Marshal(text)
		if got := QuoteJSON([]byte(text)); string(got) != string(want) {
			t.Errorf("QuoteJSON(%q) = %s, want %s", text, got, want)
		}
	}
}

func TestCompactJSONInPlaceCompactsOverTheBuffer(t *testing.T) {
	buf := []byte(" {\"a\" : [1, \"x y\"]}\n")
	if got := CompactJSONInPlace(buf); string(got) != `{"a":[1,"x y"]}` || &got[0] != &buf[0] {
		t.Errorf("CompactJSONInPlace = %s", got)
	}
}
