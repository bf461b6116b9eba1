package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// errorJSON is every error answer.
type errorJSON struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	writeEncoded(w, status, b, err)
}

// writeJSONCompact is writeJSON without indentation, for answers polled every
// second.
func writeJSONCompact(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	writeEncoded(w, status, b, err)
}

// writeEncoded answers with the encoded JSON b, or with a 500 when encoding
// failed (only a bug: every answer is a plain struct).
func writeEncoded(w http.ResponseWriter, status int, b []byte, err error) {
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error": "encoding the answer failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorJSON{Error: msg})
}

// decode reads a JSON body of at most MaxBody bytes into v, strictly: unknown
// fields, trailing data and the wrong types are 400s, answered here. With v nil
// the endpoint takes no body: an empty one or {} is accepted. It reports whether
// the handler may go on.
func decode(w http.ResponseWriter, r *http.Request, v any, empty bool) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("request body over %d bytes", MaxBody))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return false
	}
	noBody := v == nil
	if noBody {
		if empty && len(bytes.TrimSpace(data)) == 0 {
			return true
		}
		v = &struct{}{}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		writeError(w, http.StatusBadRequest, "a JSON body is required")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := decodeError(err)
		if noBody && strings.HasPrefix(msg, "unknown field") {
			msg += "; this endpoint takes no body"
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+msg)
		return false
	}
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid JSON body: data after the JSON object")
		return false
	}
	return true
}

// decodeError says what is wrong with a body in the API's terms: the JSON
// field and the kind of value it wants ("weight: want an integer, got a
// string"), never encoding/json's Go types and struct names ("cannot
// unmarshal string into Go struct field updateRequest.weight of type int").
func decodeError(err error) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &typ):
		msg := "want " + jsonKind(typ.Type) + ", got " + jsonValue(typ.Value)
		if typ.Field != "" {
			msg = typ.Field + ": " + msg
		}
		return msg
	case errors.As(err, &syn):
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it ends early (truncated)"
	}
	// The rest (unknown fields) name JSON keys already; only the package
	// prefix goes.
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON value a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	default:
		return "an object"
	}
}

// jsonValue names what the body held, from UnmarshalTypeError.Value: a kind
// ("string", "array"), or "number 1.5" for a number that did not fit.
func jsonValue(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	switch v {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "bool":
		return "true or false"
	case "number", "string":
		return "a " + v
	}
	return v
}
