// Command schemas writes the JSON schemas kubeconform validates manifests against, offline: one file per kind
// from the Kubernetes OpenAPI v3 documents (api/openapi-spec/v3 of the k8s.io/kubernetes module, the same
// release as the local control plane) and from the project's CRDs. It does what kubeconform's
// openapi2jsonschema script does with -strict: every object that lists its properties refuses others, so a
// misspelled field fails validation instead of being dropped by the API server.
//
// Files are named <kind>_<group>_<version>.json (the core group spelled as its version, v1_v1), for
// kubeconform's -schema-location '<dir>/{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json'.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	openapi := flag.String("openapi", "", "The api/openapi-spec/v3 directory of k8s.io/kubernetes.")
	crds := flag.String("crds", "config/crd/bases", "Directory of CRD manifests.")
	out := flag.String("out", "bin/schemas", "Output directory.")
	flag.Parse()
	if err := run(*openapi, *crds, *out); err != nil {
		fmt.Fprintln(os.Stderr, "schemas:", err)
		os.Exit(1)
	}
}

func run(openapiDir, crdDir, out string) error {
	if openapiDir == "" {
		return errors.New("-openapi is required")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	docs, err := filepath.Glob(filepath.Join(openapiDir, "*_openapi.json"))
	if err != nil || len(docs) == 0 {
		return fmt.Errorf("no OpenAPI documents in %s", openapiDir)
	}
	written := 0
	for _, doc := range docs {
		n, err := fromOpenAPI(doc, out)
		if err != nil {
			return fmt.Errorf("%s: %w", doc, err)
		}
		written += n
	}
	crdFiles, _ := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	for _, file := range crdFiles {
		n, err := fromCRD(file, out)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		written += n
	}
	fmt.Printf("%d schemas in %s\n", written, out)
	return nil
}

// fromOpenAPI writes a schema for every kind of one OpenAPI document: the kind's definition and the
// definitions it reaches, under $defs.
func fromOpenAPI(path, out string) (int, error) {
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return 0, err
	}
	defs := doc.Components.Schemas
	n := 0
	for name, def := range defs {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, item := range gvks {
			gvk, _ := item.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			if kind == "" || strings.HasSuffix(kind, "List") && name != "io.k8s.api.core.v1.List" || !hasProperty(def, "metadata") {
				continue // lists, options and events of watches are never applied
			}
			reached := map[string]any{}
			reach(defs, name, reached)
			schema := map[string]any{
				"$schema": "https://json-schema.org/draft/2020-12/schema",
				"$ref":    "#/$defs/" + name,
				"$defs":   reached,
			}
			if err := write(out, kind, group, version, schema); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// reach copies the definition name and every one it refers to into reached, made strict.
func reach(defs map[string]map[string]any, name string, reached map[string]any) {
	if _, done := reached[name]; done {
		return
	}
	def, ok := defs[name]
	if !ok {
		return
	}
	var refs []string
	copied := strict(def, &refs)
	reached[name] = copied
	for _, ref := range refs {
		reach(defs, ref, reached)
	}
}

// strict returns a copy of schema with $refs into #/$defs, nullable as a null type, and additionalProperties
// false on every object that lists its properties and does not keep unknown fields. It appends the names of
// the definitions referred to.
func strict(value any, refs *[]string) any {
	switch v := value.(type) {
	case map[string]any:
		out := map[string]any{}
		for key, item := range v {
			switch {
			case key == "$ref":
				ref := strings.TrimPrefix(item.(string), "#/components/schemas/")
				*refs = append(*refs, ref)
				out[key] = "#/$defs/" + ref
			case key == "properties" || key == "patternProperties" || key == "$defs":
				props := map[string]any{}
				for name, prop := range item.(map[string]any) {
					props[name] = strict(prop, refs)
				}
				out[key] = props
			case key == "default" || key == "example" || key == "enum":
				out[key] = item
			default:
				out[key] = strict(item, refs)
			}
		}
		_, hasProps := v["properties"]
		_, hasAdditional := v["additionalProperties"]
		if hasProps && !hasAdditional && v["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		if v["x-kubernetes-int-or-string"] == true {
			delete(out, "type")
			out["oneOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
		}
		if v["nullable"] == true {
			if t, ok := out["type"].(string); ok {
				out["type"] = []any{t, "null"}
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = strict(item, refs)
		}
		return out
	default:
		return v
	}
}

// fromCRD writes a schema for each served version of a CRD.
func fromCRD(path, out string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Served bool   `json:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return 0, err
	}
	n := 0
	for _, version := range crd.Spec.Versions {
		if !version.Served || version.Schema.OpenAPIV3Schema == nil {
			continue
		}
		var refs []string
		schema := strict(version.Schema.OpenAPIV3Schema, &refs).(map[string]any)
		schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
		// The API server checks metadata itself; CRD schemas only say it is an object.
		if props, ok := schema["properties"].(map[string]any); ok {
			props["metadata"] = map[string]any{"type": "object"}
		}
		if err := write(out, crd.Spec.Names.Kind, crd.Spec.Group, version.Name, schema); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func hasProperty(def map[string]any, name string) bool {
	props, _ := def["properties"].(map[string]any)
	_, ok := props[name]
	return ok
}

func write(out, kind, group, version string, schema map[string]any) error {
	if group == "" {
		group = version
	}
	data, err := json.Marshal(schema)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s_%s_%s.json", strings.ToLower(kind), strings.ToLower(group), version)
	return os.WriteFile(filepath.Join(out, name), data, 0o644)
}
