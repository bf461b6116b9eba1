package conf

import (
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// marshal writes c back as YAML that Parse reads to an equal *Config. It is a
// test of Parse, not a feature: if defaults, normalisation or validation
// disagree with each other, the round trip breaks.
func marshal(c *Config) ([]byte, error) {
	return yaml.Marshal(encodeNode(reflect.ValueOf(c).Elem()))
}

func encodeNode(v reflect.Value) *yaml.Node {
	scalar := func(tag, val string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: val} }
	switch v.Type() {
	case durationType:
		return scalar("!!str", time.Duration(v.Int()).String())
	case rateType:
		r := v.Interface().(Rate)
		unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
		return scalar("!!str", strconv.FormatFloat(r.Events, 'g', -1, 64)+"/"+unit)
	case prefixType:
		return scalar("!!str", v.Interface().(netip.Prefix).String())
	}
	switch v.Kind() {
	case reflect.String:
		return scalar("!!str", v.String())
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Float64:
		return scalar("", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	case reflect.Pointer:
		return encodeNode(v.Elem())
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for i := 0; i < v.Len(); i++ {
			n.Content = append(n.Content, encodeNode(v.Index(i)))
		}
		return n
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" {
				continue // not a key of the file (Config.src)
			}
			f := v.Field(i)
			// Empty strings, nil sections and nil lists are how the file
			// says "not set"; everything else is written, zeros included.
			if (f.Kind() == reflect.String || f.Kind() == reflect.Pointer || f.Kind() == reflect.Slice) && f.IsZero() {
				continue
			}
			n.Content = append(n.Content, scalar("!!str", name), encodeNode(f))
		}
		return n
	}
	panic(fmt.Sprintf("encodeNode: unsupported type %s", v.Type()))
}

// checkRoundTrip parses data and, when it is valid, checks that writing the
// result back and parsing it again gives an equal *Config.
func checkRoundTrip(t *testing.T, data []byte) {
	t.Helper()
	c, err := Parse("in.yaml", data)
	if err != nil {
		return
	}
	out, err := marshal(c)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	c2, err := Parse("out.yaml", out)
	if err != nil {
		t.Fatalf("re-parse of marshalled config failed:\n%v\n--- input\n%s\n--- marshalled\n%s", err, data, out)
	}
	c.src, c2.src = nil, nil // the two files' lines differ
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip changed the config\n--- input\n%s\n--- marshalled\n%s\n first: %+v\nsecond: %+v", data, out, c, c2)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range seeds(t) {
		checkRoundTrip(t, s)
	}
}
