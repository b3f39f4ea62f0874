package apigateway

import (
	"encoding/json"
	"testing"
)

func TestQuoteJSONWritesAsJSONMarshal(t *testing.T) {
	for _, text := range []string{"plain", `"quoted" \ back`, "line\nbreak\ttab\r\x01", "<a href='x'>&</a>", "\u2028\u2029 é 世 😀", "bad \xff\xfe utf-8", ""} {
		want, _ := json.Marshal(text)
		if got := quoteJSON([]byte(text)); string(got) != string(want) {
			t.Errorf("quoteJSON(%q) = %s, want %s", text, got, want)
		}
	}
}
