package admin

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// TestOpenAPIMatchesRouter keeps docs/openapi.yaml in step with the router: the
// same paths, each with the same methods, nothing more, nothing less.
func TestOpenAPIMatchesRouter(t *testing.T) {
	data, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}
	var documented []string
	for path, item := range doc.Paths {
		for key := range item {
			if methods[key] {
				documented = append(documented, strings.ToUpper(key)+" "+path)
			}
		}
	}
	var routed []string
	for _, rt := range Routes() {
		routed = append(routed, rt.Method+" "+rt.Pattern)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	if !slices.Equal(documented, routed) {
		t.Fatalf("docs/openapi.yaml and the router differ\n documented: %q\n routed:     %q", documented, routed)
	}
}

// TestDocsCoverEveryEndpoint: docs/admin-api.md has a section per endpoint.
func TestDocsCoverEveryEndpoint(t *testing.T) {
	data, err := os.ReadFile("../docs/admin-api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range Routes() {
		if heading := "### `" + rt.Method + " " + rt.Pattern + "`"; !strings.Contains(string(data), heading+"\n") {
			t.Errorf("docs/admin-api.md has no section %s", heading)
		}
	}
}

// TestOpenAPISchemasMatchTheAnswers: the schemas of docs/openapi.yaml list
// exactly the JSON fields of the types the handlers answer with.
func TestOpenAPISchemasMatchTheAnswers(t *testing.T) {
	data, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		schema string // name, or name.property for an inline object
		v      any
	}{
		{"Status", Status{}},
		{"PoolStatus", PoolStatus{}},
		{"PoolStatus.queue", QueueStatus{}},
		{"PoolStatus.history", History{}},
		{"BackendStatus", BackendStatus{}},
		{"RouteStatus", RouteStatus{}},
		{"CacheStatus", CacheStatus{}},
		{"CaptureStatus", CaptureStatus{}},
		{"Mode", ModeStatus{}},
		{"Signals", SignalsStatus{}},
		{"DeadLetter", DeadLetter{}},
		{"Captures", capturesJSON{}},
		{"Capture", recordJSON{}},
		{"CaptureChange", captureChange{}},
		{"Replay", replayJSON{}},
		{"Purge", purgeJSON{}},
	} {
		name, prop, _ := strings.Cut(tt.schema, ".")
		sc, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("docs/openapi.yaml has no schema %s", name)
			continue
		}
		if prop != "" {
			sc = sc.Properties[prop]
		}
		var documented []string
		for p := range sc.Properties {
			documented = append(documented, p)
		}
		fields := jsonFields(reflect.TypeOf(tt.v))
		slices.Sort(documented)
		slices.Sort(fields)
		if !slices.Equal(documented, fields) {
			t.Errorf("schema %s and %T differ\n documented: %q\n answered:   %q", tt.schema, tt.v, documented, fields)
		}
	}
}

type schema struct {
	Properties map[string]schema `yaml:"properties"`
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
