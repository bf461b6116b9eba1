package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	if v == nil {
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
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid JSON body: data after the JSON object")
		return false
	}
	return true
}
