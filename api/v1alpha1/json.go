package v1alpha1

import (
	"bytes"

	cbor "k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"
	"k8s.io/apimachinery/pkg/util/json"
)

// JSON is any JSON value, kept as its bytes. It has the wire format of apiextensions-apiserver's
// apiextensionsv1.JSON (the bytes themselves in JSON, the decoded value in CBOR, null when empty), so the CRD
// does not change; it lives here so that importing this API does not pull k8s.io/apiextensions-apiserver's
// module graph (the API server, etcd, gRPC) into every consumer's go.mod.
type JSON struct {
	// Raw is the JSON value's bytes.
	Raw []byte `json:"-"`
}

var jsonNull = []byte("null")

// cborNull is CBOR's null (major type 7, simple value 22).
const cborNull = 0xf6

// MarshalJSON writes the bytes as they are, or null when there are none.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j.Raw) > 0 {
		return j.Raw, nil
	}
	return jsonNull, nil
}

// UnmarshalJSON keeps a copy of the bytes; null leaves the value empty.
func (j *JSON) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && !bytes.Equal(data, jsonNull) {
		j.Raw = append(j.Raw[0:0], data...)
	}
	return nil
}

// MarshalCBOR transcodes the JSON value to CBOR, as apiextensionsv1.JSON does.
func (j JSON) MarshalCBOR() ([]byte, error) {
	if len(j.Raw) == 0 {
		return []byte{cborNull}, nil
	}
	var v any
	if err := json.Unmarshal(j.Raw, &v); err != nil {
		return nil, err
	}
	return cbor.Marshal(v)
}

// UnmarshalCBOR transcodes a CBOR value to JSON bytes; null leaves the value empty.
func (j *JSON) UnmarshalCBOR(data []byte) error {
	if len(data) == 0 || data[0] == cborNull {
		return nil
	}
	var v any
	if err := cbor.Unmarshal(data, &v); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	j.Raw = raw
	return nil
}
