package conf

import (
	"strconv"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	// Path is the file name given to Parse.
	Path string
	// Line is the 1-based line of the offending value, or of the enclosing
	// section when the problem is a missing key.
	Line int
	// Field is the key path, e.g. "pools[1].backends[0].weight"; empty for
	// problems with the file as a whole, such as a YAML syntax error.
	Field string
	// Msg says what is wrong and, where it helps, what is expected.
	Msg string
}

// Error formats e as "PATH:LINE: FIELD: MSG", or "PATH:LINE: MSG" when Field
// is empty, which is the format of floodgate -check.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, sorted by line. Parse returns a
// non-empty Errors as its error; use errors.As to get it back.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the problems as a slice of errors, so errors.As can reach
// each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
