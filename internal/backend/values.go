package backend

import (
	"math"
	"time"
)

// Percent turns a vendor's progress number into a whole percent: rounded down, clamped to 0..100 first so
// that no float overflows an int32. NaN gives nil.
func Percent(f float64) *int32 {
	if math.IsNaN(f) {
		return nil
	}
	p := int32(math.Floor(min(max(f, 0), 100)))
	return &p
}

// EpochTime reads an epoch timestamp given in seconds or milliseconds, as vendors document one and send the
// other: values above 1e12 are milliseconds (1e12 seconds is 33,000 years away). Zero, negative, NaN and absurd
// values give nil.
func EpochTime(v float64) *time.Time {
	if math.IsNaN(v) || v <= 0 || v > 1e15 {
		return nil
	}
	var t time.Time
	if v > 1e12 {
		t = time.UnixMilli(int64(v)).UTC()
	} else {
		t = time.Unix(int64(v), 0).UTC()
	}
	return &t
}
