package conf

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// maxErrors bounds what one Parse reports: past a hundred problems the file is
// not a config with mistakes but something else, and a huge report only hides
// the first lines that matter.
const maxErrors = 100

// maxKept bounds the problems held in memory before sorting. Past it they are
// only counted: the ones shown may then not be the first hundred by line, but
// a file with ten thousand problems is not being read line by line anyway.
const maxKept = 10000

// decoder walks a yaml.Node tree into the typed structs, driven by their yaml
// tags, and remembers the line of every key it saw so that validation, which
// runs later on the typed values, can still cite lines.
//
// We walk nodes ourselves rather than use yaml's Decode with KnownFields.
// Decode does report every unknown key (TestYAMLKnownFieldsReportsEveryKey),
// but as "line N: field x not found in type T", without the field path
// (pools[0].backends[1].wieght) or a suggestion; and it cannot tell an
// omitted key from an explicit zero, expands aliases, and has no notion of
// sizes, rates or "a bare number is not a duration".
type decoder struct {
	file string
	errs Errors
	// lines maps a field path to the line of its value (of its key when the
	// value is a mapping or a list, so errors about a whole section point at
	// its name).
	lines map[string]int
	// nulls holds field paths present with an empty value, which count as
	// omitted.
	nulls map[string]bool
	// bad holds field paths that already have an error; later problems at or
	// under them are dropped, so a value that failed to decode does not also
	// get complaints about the default it was left with.
	bad     map[string]bool
	dropped int // problems past maxKept
	root    int
	schemas map[reflect.Type]*schema
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:    file,
		lines:   make(map[string]int),
		nulls:   make(map[string]bool),
		bad:     make(map[string]bool),
		root:    1,
		schemas: make(map[reflect.Type]*schema),
	}
}

// errAt records a problem at an explicit line.
func (d *decoder) errAt(line int, field, format string, args ...any) {
	if field != "" {
		for f := field; f != ""; f = parentField(f) {
			if d.bad[f] {
				return
			}
		}
		d.bad[field] = true
	}
	d.add(line, field, fmt.Sprintf(format, args...))
}

// add records a problem without marking field as bad.
func (d *decoder) add(line int, field, msg string) {
	if line < 1 {
		line = 1
	}
	if len(d.errs) >= maxKept {
		d.dropped++
		return
	}
	d.errs = append(d.errs, &Error{Path: d.file, Line: line, Field: field, Msg: msg})
}

// errorf records a problem with a field, at the line of the field or, when
// the field was omitted, of the nearest enclosing section that was written.
func (d *decoder) errorf(field, format string, args ...any) {
	d.errAt(d.lineOf(field), field, format, args...)
}

func (d *decoder) lineOf(field string) int {
	for {
		if l, ok := d.lines[field]; ok {
			return l
		}
		if field == "" {
			return d.root
		}
		field = parentField(field)
	}
}

// has reports whether field was written with a non-empty value.
func (d *decoder) has(field string) bool {
	_, ok := d.lines[field]
	return ok && !d.nulls[field]
}

// result returns the sorted, capped problems, or nil.
func (d *decoder) result() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return a.Line - b.Line })
	if len(d.errs) > maxErrors {
		rest := len(d.errs) - maxErrors + d.dropped
		more := &Error{Path: d.file, Line: d.errs[maxErrors].Line, Msg: fmt.Sprintf("and %d more problems", rest)}
		d.errs = append(d.errs[:maxErrors:maxErrors], more)
	}
	return d.errs
}

func parentField(field string) string {
	i := strings.LastIndexAny(field, ".[")
	if i < 0 {
		return ""
	}
	return field[:i]
}

func joinField(parent, key string) string {
	if !isPlainKey(key) {
		key = strconv.Quote(truncate(key, 64))
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func isPlainKey(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// quote renders a value from the file inside a message, bounded so one huge
// scalar cannot turn an error line into megabytes.
func quote(s string) string { return strconv.Quote(truncate(s, 64)) }

// schema is the keys of one struct type, from its yaml tags.
type schema struct {
	names  []string // in declaration order, for hints
	fields map[string]schemaField
}

type schemaField struct {
	index int
	size  bool // ",size": an integer in bytes, written with a unit
}

func (d *decoder) schemaOf(t reflect.Type) *schema {
	if s, ok := d.schemas[t]; ok {
		return s
	}
	s := &schema{fields: make(map[string]schemaField)}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		name, opt, _ := strings.Cut(tag, ",")
		s.names = append(s.names, name)
		s.fields[name] = schemaField{index: i, size: opt == "size"}
	}
	d.schemas[t] = s
	return s
}

// defaulter is implemented by the schema structs: the decoder fills in the
// defaults before decoding a section's keys over them, which is how an omitted
// key keeps its default while an explicit zero stays zero.
type defaulter interface{ setDefaults() }

var (
	durationType = reflect.TypeFor[time.Duration]()
	rateType     = reflect.TypeFor[Rate]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
)

// nodeKind names a node's kind the way users know it, for type errors.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "an empty value"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int", "!!float":
			return "number " + truncate(n.Value, 64)
		default:
			return "string " + quote(n.Value)
		}
	}
	return "an unknown YAML node"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// usable rejects the YAML features the schema has no use for. Anchors and
// aliases go because an alias bomb (a few lines that expand to billions of
// nodes) must not be able to exhaust memory, and refusing them is simpler and
// clearer than bounding expansion; tags go because nothing in the schema is
// typed by tag.
func (d *decoder) usable(n *yaml.Node, field string) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		d.errAt(n.Line, field, "YAML aliases (*%s) are not supported; write the value out", truncate(n.Value, 64))
		return false
	case n.Anchor != "":
		d.errAt(n.Line, field, "YAML anchors (&%s) are not supported; write the value out", truncate(n.Anchor, 64))
		return false
	}
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!timestamp":
		return true
	default:
		d.errAt(n.Line, field, "unsupported YAML tag %s", quote(tag))
		return false
	}
}

// value decodes n into v. n is not null: callers treat null as omitted.
func (d *decoder) value(n *yaml.Node, v reflect.Value, field string, size bool) {
	if !d.usable(n, field) {
		return
	}
	switch v.Type() {
	case durationType:
		if s, ok := d.scalar(n, field, "a duration like 800ms or 30s"); ok {
			dur, err := parseDuration(s, n.ShortTag())
			if err != nil {
				d.errAt(n.Line, field, "%s", err)
				return
			}
			v.SetInt(int64(dur))
		}
		return
	case rateType:
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!bool" {
			r, err := parseRate(n.Value)
			if err != nil {
				d.errAt(n.Line, field, "%s", err)
				return
			}
			v.Set(reflect.ValueOf(r))
			return
		}
		d.errAt(n.Line, field, "must be a rate like 50/s or 100/m, got %s", nodeKind(n))
		return
	case prefixType:
		if s, ok := d.scalar(n, field, "an IP address or CIDR like 10.0.0.0/8"); ok {
			p, err := parsePrefix(s)
			if err != nil {
				d.errAt(n.Line, field, "%s", err)
				return
			}
			v.Set(reflect.ValueOf(p))
		}
		return
	}

	switch v.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
			d.errAt(n.Line, field, "must be a string, got %s", nodeKind(n))
			return
		}
		if hasControl(n.Value) {
			d.errAt(n.Line, field, "must not contain control characters")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.errAt(n.Line, field, "must be true or false, got %s", nodeKind(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.errAt(n.Line, field, "must be true or false, got %s", quote(n.Value))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		var i int64
		if size {
			s, ok := d.scalar(n, field, "a size like 512KB or 64MB")
			if !ok {
				return
			}
			switch n.ShortTag() {
			case "!!int":
				// A bare integer is bytes; let YAML read its hex, octal and
				// underscore forms.
				if err := n.Decode(&i); err != nil {
					d.errAt(n.Line, field, "size %s is too large", quote(s))
					return
				}
				if i < 0 {
					d.errAt(n.Line, field, "size must not be negative, got %s", quote(s))
					return
				}
			case "!!str", "!!timestamp":
				var err error
				if i, err = parseSize(s); err != nil {
					d.errAt(n.Line, field, "%s", err)
					return
				}
			default:
				d.errAt(n.Line, field, "invalid size %s, want an integer with an optional unit B, KB, MB or GB, e.g. 64MB", quote(s))
				return
			}
		} else {
			if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
				d.errAt(n.Line, field, "must be an integer, got %s", nodeKind(n))
				return
			}
			if err := n.Decode(&i); err != nil {
				d.errAt(n.Line, field, "integer %s is out of range", quote(n.Value))
				return
			}
		}
		if v.OverflowInt(i) {
			d.errAt(n.Line, field, "%d is out of range", i)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || tag != "!!int" && tag != "!!float" {
			d.errAt(n.Line, field, "must be a number, got %s", nodeKind(n))
			return
		}
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errAt(n.Line, field, "must be a finite number, got %s", quote(n.Value))
			return
		}
		v.SetFloat(f)
	case reflect.Struct:
		d.mapping(n, v, field)
	case reflect.Pointer:
		// Every pointer in the schema is an optional section; allocate it only
		// for a mapping so a wrong type leaves it nil instead of half-built.
		if n.Kind != yaml.MappingNode {
			d.errAt(n.Line, field, "must be a mapping, got %s", nodeKind(n))
			return
		}
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), field, size)
		v.Set(p)
	case reflect.Slice:
		d.sequence(n, v, field, size)
	default:
		// Only reachable if a schema struct gains a field of a type this
		// decoder was not taught; the tests decode every field.
		panic(fmt.Sprintf("conf: field %s has unsupported type %s", field, v.Type()))
	}
}

// scalar returns the text of a scalar node, or reports that want was expected.
func (d *decoder) scalar(n *yaml.Node, field, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
		d.errAt(n.Line, field, "must be %s, got %s", want, nodeKind(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, field string, size bool) {
	if n.Kind != yaml.SequenceNode {
		d.errAt(n.Line, field, "must be a list, got %s", nodeKind(n))
		return
	}
	if len(n.Content) == 0 {
		// An empty list decodes to nil so that "key: []" and an omitted key
		// are the same value; has() still tells them apart.
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		f := field + "[" + strconv.Itoa(i) + "]"
		d.lines[f] = item.Line
		elem := s.Index(i)
		if df, ok := elem.Addr().Interface().(defaulter); ok {
			df.setDefaults()
		}
		if isNull(item) {
			d.errAt(item.Line, f, "empty list item")
			continue
		}
		d.value(item, elem, f, size)
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.MappingNode {
		d.errAt(n.Line, field, "must be a mapping, got %s", nodeKind(n))
		return
	}
	if df, ok := v.Addr().Interface().(defaulter); ok {
		df.setDefaults()
	}
	sc := d.schemaOf(v.Type())
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errAt(k.Line, field, "keys must be plain names, got %s", nodeKind(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errAt(k.Line, field, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		}
		f := joinField(field, k.Value)
		if !d.usable(k, f) {
			continue
		}
		if first, dup := seen[k.Value]; dup {
			// Not marked bad: the first occurrence is still decoded and
			// still deserves its own checks.
			d.add(k.Line, f, fmt.Sprintf("duplicate key, first set at line %d", first))
			continue
		}
		seen[k.Value] = k.Line
		sf, ok := sc.fields[k.Value]
		if !ok {
			if hint := suggest(k.Value, sc.names); hint != "" {
				d.errAt(k.Line, f, "unknown key, did you mean %s?", hint)
			} else {
				d.errAt(k.Line, f, "unknown key")
			}
			continue
		}
		if val.Kind == yaml.ScalarNode {
			d.lines[f] = val.Line
		} else {
			d.lines[f] = k.Line
		}
		if isNull(val) && val.Anchor == "" {
			d.nulls[f] = true
			continue
		}
		d.value(val, v.Field(sf.index), f, sf.size)
	}
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return true
		}
	}
	return false
}

// parseDuration reads Go duration syntax. A bare number is refused, even
// though it could be read as seconds, because "timeout: 5" is as likely to
// mean milliseconds; 0 is the one number with no ambiguity.
func parseDuration(s, tag string) (time.Duration, error) {
	if tag == "!!int" || tag == "!!float" {
		if f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); err == nil && f == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("duration needs a unit, e.g. 800ms or 30s, got %s", truncate(s, 64))
	}
	dur, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64); ferr == nil {
			return 0, fmt.Errorf("duration needs a unit, e.g. 800ms or 30s, got %s", quote(s))
		}
		return 0, fmt.Errorf("invalid duration %s, want e.g. 800ms, 30s or 1h30m", quote(s))
	}
	return dur, nil
}

// sizeUnits are 1024-based, as in nginx and HAProxy, and accept the IEC
// spellings too so that "64MiB" means what it says.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1 << 10,
	"kib": 1 << 10,
	"mb":  1 << 20,
	"mib": 1 << 20,
	"gb":  1 << 30,
	"gib": 1 << 30,
}

// parseSize reads "64MB", "512 KiB" or a number of bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	if i < len(t) && (t[i] == '-' || t[i] == '+') {
		i++
	}
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok || num == "" || num == "-" || num == "+" {
		return 0, fmt.Errorf("invalid size %s, want an integer with an optional unit B, KB, MB or GB, e.g. 64MB", quote(s))
	}
	if num[0] == '-' {
		return 0, fmt.Errorf("size must not be negative, got %s", quote(s))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %s is too large", quote(s))
	}
	return n * mult, nil
}

// parseRate reads "N/s", "N/m" or "N/h" with N a positive number.
func parseRate(s string) (Rate, error) {
	bad := fmt.Errorf("invalid rate %s, want N/s, N/m or N/h with N > 0, e.g. 50/s", quote(s))
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, bad
	}
	var per time.Duration
	switch strings.TrimSpace(unit) {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return Rate{}, bad
	}
	ev, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || !(ev > 0) || math.IsInf(ev, 0) {
		return Rate{}, bad
	}
	return Rate{Events: ev, Per: per}, nil
}

// parsePrefix reads a CIDR or a bare IP (a single-address prefix). A CIDR with
// host bits set is refused rather than masked: "10.0.0.1/8" is usually a typo
// for one of two very different things.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %s", quote(s))
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("CIDR %s has host bits set, did you mean %s?", quote(s), m)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid IP address or CIDR %s", quote(s))
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// suggest returns the candidate closest to s, if one is close enough to be a
// likely typo: the same key in another case or spelling (pathPrefix,
// PATH-PREFIX), or within an edit distance of 2 (1 for short keys).
func suggest(s string, candidates []string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	ns := normKey(s)
	best, bestDist := "", 3
	if len(s) <= 5 {
		bestDist = 2
	}
	for _, c := range candidates {
		if normKey(c) == ns {
			return c
		}
		if diff := len(s) - len(c); diff >= bestDist || -diff >= bestDist {
			continue // the distance is at least the length difference
		}
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// normKey drops separators and case, so camelCase and kebab-case spellings
// of a key compare equal to it.
func normKey(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c == '-':
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of adjacent bytes each cost 1, so the
// common typo "hihg" is one edit from "high".
func editDistance(a, b string) int {
	// Three rows: the one before the previous is needed for swaps.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
