package backendtest

// What the vendor packages' tests share about hostile answers: bodies of the worst shapes a vendor can send
// within the body limit, and a measurement of the memory parsing one costs.

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// MaxParseBytes is the most one parse of a body may allocate on top of the body itself: the operator runs
// many polls at once, and a hostile vendor must not be able to make one of them cost a multiple of the body.
const MaxParseBytes = 4 << 20

// Shape builds a JSON value of at most n bytes (as close to n as the shape allows).
type Shape func(n int) []byte

// Shapes are the worst shapes of JSON for a parser that reads a whole body: each packs as many values, as
// deep a nesting or as long a string as the limit lets through. Each one is valid JSON except DeepNesting,
// which is deeper than encoding/json accepts (10,000) and must be refused cheaply.
var Shapes = map[string]Shape{
	"array of empty objects": ArrayOfEmptyObjects,
	"array of huge objects":  ArrayOfHugeObjects,
	"deep nesting":           DeepNesting,
	"huge string":            HugeString,
	"many keys":              ManyKeys,
}

// ArrayOfEmptyObjects is [{},{},…].
func ArrayOfEmptyObjects(n int) []byte { return repeatedList("[", "{}", ",", "]", n) }

// ArrayOfHugeObjects is four objects of many keys each.
func ArrayOfHugeObjects(n int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	per := (n - 2) / 4
	for i := range 4 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(ManyKeys(per - 1))
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// DeepNesting is [[[[…]]]].
func DeepNesting(n int) []byte {
	return []byte(strings.Repeat("[", n/2) + strings.Repeat("]", n/2))
}

// HugeString is one string, "xxx…".
func HugeString(n int) []byte { return []byte(`"` + strings.Repeat("x", max(n-2, 0)) + `"`) }

// ManyKeys is {"k0":0,"k1":0,…}.
func ManyKeys(n int) []byte {
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i := 0; ; i++ {
		size := len(`"k":0`) + len(strconv.Itoa(i)) + 1
		if len(b)+size+1 > n {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(strconv.AppendInt(append(b, `"k`...), int64(i), 10), `":0`...)
	}
	return append(b, '}')
}

func repeatedList(open, item, sep, closing string, n int) []byte {
	count := max((n-len(open)-len(closing)+len(sep))/(len(item)+len(sep)), 0)
	return []byte(open + strings.Repeat(item+sep, count)[:max(count*(len(item)+len(sep))-len(sep), 0)] + closing)
}

// Fit returns wrap(shape(n)) for the largest n that keeps it within limit bytes, so that a shape placed in
// the field a parser reads (escaped into a string, say) still fills the body right up to the limit.
func Fit(limit int, shape Shape, wrap func(value []byte) []byte) []byte {
	n := limit
	for {
		body := wrap(shape(n))
		if len(body) <= limit || n == 0 {
			return body
		}
		n -= max((len(body)-limit+1)/2, 1)
	}
}

// Cost is the memory a parse took, as Measure sees it.
type Cost struct {
	// Allocated is every byte allocated during the parse, garbage included.
	Allocated uint64
	// PeakHeap is the most the live heap grew during the parse, sampled.
	PeakHeap uint64
}

func (c Cost) String() string {
	return fmt.Sprintf("allocated %s, peak heap +%s", MiB(c.Allocated), MiB(c.PeakHeap))
}

// MiB formats a byte count for the memory tests' logs ("1.50 MiB").
func MiB(n uint64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// Measure runs parse once and returns what it allocated (runtime.MemStats.TotalAlloc) and how far the heap
// grew (sampled every 100µs from runtime/metrics, so a short peak may be missed; Allocated never is).
func Measure(parse func()) Cost {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	// The sampler sleeps rather than waits on a timer channel, which would allocate on every sample and be
	// counted as the parse's.
	var stop atomic.Bool
	peak := make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var most uint64
		for !stop.Load() {
			metrics.Read(s)
			most = max(most, s[0].Value.Uint64())
			time.Sleep(100 * time.Microsecond)
		}
		peak <- most
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	parse()
	runtime.ReadMemStats(&after)
	stop.Store(true)
	most := <-peak
	metrics.Read(sample)
	most = max(most, sample[0].Value.Uint64())
	return Cost{Allocated: after.TotalAlloc - before.TotalAlloc, PeakHeap: max(most, base) - base}
}

// ExpectBoundedCost parses each body once and fails t when a parse allocates more than MaxParseBytes plus
// allowance(body) (what the parser must keep, such as a result it cannot reference in the body). It logs
// every cost, so that `go test -v` shows the figures.
func ExpectBoundedCost(t *testing.T, bodies map[string][]byte, allowance func(body []byte) uint64, parse func(body []byte)) {
	t.Helper()
	for name, body := range bodies {
		cost := Measure(func() { parse(body) })
		t.Logf("%-40s body %s: %s", name, MiB(uint64(len(body))), cost)
		limit := uint64(MaxParseBytes)
		if allowance != nil {
			limit += allowance(body)
		}
		if cost.Allocated > limit {
			t.Errorf("%s: parsing a body of %s allocated %s, more than the %s allowed", name, MiB(uint64(len(body))), MiB(cost.Allocated), MiB(limit))
		}
	}
}

// Bodies places every shape in a field of a body by wrap, filled to limit bytes; names are prefixed.
func Bodies(limit int, prefix string, wrap func(value []byte) []byte) map[string][]byte {
	out := make(map[string][]byte, len(Shapes))
	for name, shape := range Shapes {
		out[prefix+name] = Fit(limit, shape, wrap)
	}
	return out
}

// Field places a value between prefix and suffix: Field(`{"inventories":`, `}`) puts it in a field.
func Field(prefix, suffix string) func(value []byte) []byte {
	return func(value []byte) []byte {
		out := make([]byte, 0, len(prefix)+len(value)+len(suffix))
		return append(append(append(out, prefix...), value...), suffix...)
	}
}

// InString places a value, escaped as a JSON string, between prefix and suffix: for vendors that nest a JSON
// document in a string field.
func InString(prefix, suffix string) func(value []byte) []byte {
	return func(value []byte) []byte {
		quoted, err := json.Marshal(string(value))
		if err != nil {
			panic(err)
		}
		return Field(prefix, suffix)(quoted)
	}
}

// WorstBodies are the Shapes placed by each of the wraps (keyed by a name for the field), each filled to
// limit bytes.
func WorstBodies(limit int, wraps map[string]func([]byte) []byte) map[string][]byte {
	out := map[string][]byte{}
	for field, wrap := range wraps {
		maps.Copy(out, Bodies(limit, field+": ", wrap))
	}
	return out
}

// ArrayOf is [item,item,…]: a vendor's own element, repeated, for a parser that reads every element.
func ArrayOf(item string) Shape {
	return func(n int) []byte { return repeatedList("[", item, ",", "]", n) }
}
