package conf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest config file Parse accepts. Real configs are a
// few kilobytes; the cap bounds the memory the YAML parser can be made to use
// (its node tree costs about a hundred times the input).
const MaxFileSize = 1 << 20

// Load reads the file at path and parses it with Parse. A file that cannot be
// read is a single error wrapping the *fs.PathError, which names the path; a
// file larger than MaxFileSize is read only far enough to know that.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("conf: %w", err)
	}
	defer f.Close()
	// Limit the read so a wrong path (a log file, /dev/zero) fails fast.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("conf: read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes data strictly, fills in defaults and validates the result.
// path is used only to label errors. It does no I/O: files the config names
// (certificates, token, journal directory) are not opened here.
//
// On failure the *Config is nil and the error is an Errors holding every
// problem found, sorted by line, each with the field path and line of the
// offending value. Parse is safe for concurrent use.
func Parse(path string, data []byte) (*Config, error) {
	d := newDecoder(path)
	if len(data) > MaxFileSize {
		d.add(1, "", fmt.Sprintf("config file too large: %d bytes, the limit is %d", len(data), MaxFileSize))
		return nil, d.result()
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// Checked before YAML sees it, which would call a stray tab a syntax
		// error.
		d.add(1, "", "config file is empty")
		return nil, d.result()
	}
	root := d.document(data)
	if root == nil {
		return nil, d.result()
	}
	d.root = root.Line
	c := new(Config)
	c.setDefaults()
	d.mapping(root, reflect.ValueOf(c).Elem(), "")
	d.fill(c)
	d.validate(c)
	if err := d.result(); err != nil {
		return nil, err
	}
	c.src = &source{path: path, lines: d.lines, root: d.root}
	return c, nil
}

// yamlLine finds the line in the YAML library's error text, which is only a
// string ("yaml: line 3: mapping values are not allowed in this context").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// document parses data as exactly one YAML document whose top level is a
// mapping, and returns that mapping, or nil after recording why not.
func (d *decoder) document(data []byte) (root *yaml.Node) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := d.decodeYAML(data, dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(1, "", "config file is empty")
		}
		return nil
	}
	var extra yaml.Node
	if err := d.decodeYAML(data, dec, &extra); err == nil {
		d.add(extra.Line, "", "more than one YAML document (---); a config file holds exactly one")
		return nil
	} else if !errors.Is(err, io.EOF) {
		return nil
	}
	if len(doc.Content) != 1 {
		d.add(1, "", "config file is empty")
		return nil
	}
	root = doc.Content[0]
	if isNull(root) && root.Anchor == "" {
		d.add(1, "", "config file is empty")
		return nil
	}
	if !d.usable(root, "") {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.add(root.Line, "", fmt.Sprintf("the top level must be a mapping of keys such as listen: and pools:, got %s", nodeKind(root)))
		return nil
	}
	return root
}

// decodeYAML runs the YAML parser on dec, a decoder of data, and records its
// syntax errors at the line of the problem (syntaxLine). io.EOF, the end of
// the documents, is returned unrecorded.
func (d *decoder) decodeYAML(data []byte, dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		// The parser is third-party code fed untrusted input; a panic in it
		// must become a config error, not take the process down on reload.
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
			d.add(1, "", fmt.Sprintf("YAML parser failed: %v", r))
		}
	}()
	err = dec.Decode(n)
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	msg, line := err.Error(), 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if l, perr := strconv.Atoi(m[1]); perr == nil && l > 0 {
			line = l
		}
		msg = msg[len(m[0]):]
		line = syntaxLine(data, err.Error(), line)
	} else if rest, ok := strings.CutPrefix(msg, "yaml: "); ok {
		msg = rest
	}
	d.add(line, "", "invalid YAML: "+msg)
	return err
}

// syntaxLine returns the line of the syntax error full (the YAML library's
// error text) in data, given the line that text names.
//
// The library names the line where the enclosing construct began (its
// "context mark", 0-based for parser errors), not the one with the problem:
// an item of a list mis-indented on line 6 is reported at the line before the
// list's first item. The problem's own position is not in the error, so find
// it: the parser reads front to back and stops at the first problem, so the
// shortest prefix of whole lines that fails with exactly the same error ends
// on the problem's line. Prefixes shorter than that parse, or fail
// differently (at their end), so "fails the same" holds from that line on and
// a binary search finds it in log2(lines) parses; the answer is never before
// reported, where the construct began. Only a file that does not parse pays.
func syntaxLine(data []byte, full string, reported int) int {
	var ends []int // ends[i] is the length of the first i+1 lines
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	lo, hi := max(reported, 1), len(ends) // the answer is in [lo, hi]
	if lo > hi {
		return reported
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if sameYAMLError(data[:ends[mid-1]], full) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// sameYAMLError reports whether parsing every document of data fails with
// exactly the error text full.
func sameYAMLError(data []byte, full string) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err != nil {
			return !errors.Is(err, io.EOF) && err.Error() == full
		}
	}
}
