package v1alpha1

import (
	"bytes"
	"encoding/json"
	"testing"

	cbor "k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"
)

// The result's wire format is apiextensionsv1.JSON's: the value itself, and no field when empty.
func TestResultKeepsItsJSONOnTheWire(t *testing.T) {
	cases := map[string]struct {
		status AsyncTaskStatus
		want   string
	}{
		"Object": {
			status: AsyncTaskStatus{Result: &JSON{Raw: []byte(`{"b":1,"a":[true,null,"x"]}`)}},
			want:   `{"result":{"b":1,"a":[true,null,"x"]},"observedGeneration":0}`,
		},
		"Scalar": {
			status: AsyncTaskStatus{Result: &JSON{Raw: []byte(`"done"`)}},
			want:   `{"result":"done","observedGeneration":0}`,
		},
		"Absent": {
			status: AsyncTaskStatus{},
			want:   `{"observedGeneration":0}`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := json.Marshal(tc.status)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("marshal: got %s, want %s", out, tc.want)
			}
			var back AsyncTaskStatus
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatal(err)
			}
			if (back.Result == nil) != (tc.status.Result == nil) ||
				back.Result != nil && !bytes.Equal(back.Result.Raw, tc.status.Result.Raw) {
				t.Errorf("round trip: got %+v, want %+v", back.Result, tc.status.Result)
			}
		})
	}
}

func TestNullResultStaysEmpty(t *testing.T) {
	var j JSON
	if err := json.Unmarshal([]byte(`null`), &j); err != nil {
		t.Fatal(err)
	}
	if j.Raw != nil {
		t.Errorf("null: got Raw %q, want none", j.Raw)
	}
	if out, _ := json.Marshal(j); string(out) != "null" {
		t.Errorf("empty value marshals to %s, want null", out)
	}
}

func TestResultRoundTripsThroughCBOR(t *testing.T) {
	in := JSON{Raw: []byte(`{"a":[1,"x",true]}`)}
	data, err := cbor.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out JSON
	if err := cbor.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if string(out.Raw) != `{"a":[1,"x",true]}` {
		t.Errorf("got %s", out.Raw)
	}
	empty, err := cbor.Marshal(JSON{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(empty, []byte{cborNull}) {
		t.Errorf("empty value: got %x, want CBOR null", empty)
	}
}
