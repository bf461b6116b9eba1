package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/floodgate/floodgate/internal/limits"
)

// StateVersion is the version of the state file format written by SaveState.
const StateVersion = 1

// maxStateFile bounds what LoadState reads: 4096 backends per pool at ~150 bytes
// each is far below it for any real deployment.
const maxStateFile = 64 << 20

// State is what survives a restart: the backends registered over the admin API
// and the API's overrides of config-owned backends. It is what the state file
// holds, as JSON. A State is a plain value.
type State struct {
	// Version is StateVersion.
	Version int `json:"version"`
	// Backends are sorted by pool, then by registration order.
	Backends []SavedBackend `json:"backends"`

	// merged describes entries LoadState dropped because they spell a backend
	// an earlier entry already holds (files written before addresses were
	// canonical); Init reports them with the entries it skips.
	merged []string
}

// SavedBackend is one entry of the state file.
type SavedBackend struct {
	// Pool and Address identify the backend.
	Pool    string `json:"pool"`
	Address string `json:"address"`
	// Weight and Drain are the backend's weight and drain flag.
	Weight int  `json:"weight"`
	Drain  bool `json:"drain,omitempty"`
	// Source is "api" for a backend registered over the API, "config" for an
	// override of a backend of the config file, which applies only while the
	// file still gives that backend FileWeight.
	Source Source `json:"source"`
	// FileWeight is the weight the config file gave the backend when the
	// override was made; only for Source "config".
	FileWeight int `json:"file_weight,omitempty"`
	// MaxConns is the backend's own connection limit; absent or 0 is the
	// pool's (files written before backends had one load as such).
	MaxConns int `json:"max_conns,omitempty"`
	// FileMaxConns is the max_conns the config file gave the backend when the
	// override was made; only for Source "config". Absent is 0.
	FileMaxConns int `json:"file_max_conns,omitempty"`
}

// CorruptStateError is LoadState's error for a state file that exists but cannot
// be used. It names the path; Err says what is wrong.
type CorruptStateError struct {
	// Path is the state file.
	Path string
	// Err is what is wrong with it.
	Err error
}

// Error names the file and the problem.
func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("state file %s is corrupt: %v", e.Path, e.Err)
}

// Unwrap returns Err.
func (e *CorruptStateError) Unwrap() error { return e.Err }

// LoadState reads and checks the state file at path. A missing file is an empty
// State and no error (a first start). A file that cannot be read is an error
// wrapping the *fs.PathError; one that is not a valid state file (bad JSON, an
// unknown field, a bad address or weight, a duplicate) is a *CorruptStateError,
// so that the caller refuses to start rather than silently drop backends.
func LoadState(path string) (State, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{Version: StateVersion}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("registry: state file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return State{}, fmt.Errorf("registry: state file: read %s: %w", path, err)
	}
	st, err := ParseState(data)
	if err != nil {
		return State{}, &CorruptStateError{Path: path, Err: err}
	}
	return st, nil
}

// ParseState decodes and checks a state file's contents strictly: unknown fields,
// trailing data, a wrong version, invalid entries and duplicates are errors. It is
// a pure function, safe for concurrent use.
func ParseState(data []byte) (State, error) {
	if len(data) > maxStateFile {
		return State{}, fmt.Errorf("larger than %d bytes", maxStateFile)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return State{}, errors.New("empty file")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st State
	if err := dec.Decode(&st); err != nil {
		return State{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		return State{}, errors.New("invalid JSON: data after the state object")
	}
	if st.Version != StateVersion {
		return State{}, fmt.Errorf("version %d, want %d", st.Version, StateVersion)
	}
	seen := make(map[[2]string]int, len(st.Backends))
	raw := make([]string, len(st.Backends))
	kept := st.Backends[:0:0]
	for i, b := range st.Backends {
		raw[i] = b.Address
		where := fmt.Sprintf("backends[%d]", i)
		if !validName(b.Pool) {
			return State{}, fmt.Errorf("%s: invalid pool name %q", where, b.Pool)
		}
		addr, err := CanonicalAddress(b.Address)
		if err != nil {
			return State{}, fmt.Errorf("%s: %v", where, err)
		}
		b.Address = addr
		if b.Weight < 0 || b.Weight > maxWeight {
			return State{}, fmt.Errorf("%s: weight %d out of range 0-%d", where, b.Weight, maxWeight)
		}
		if err := limits.CheckMaxConns(int64(b.MaxConns)); err != nil {
			return State{}, fmt.Errorf("%s: max_conns: %v", where, err)
		}
		switch b.Source {
		case SourceAPI:
			if b.FileWeight != 0 {
				return State{}, fmt.Errorf("%s: file_weight is only for source config", where)
			}
			if b.FileMaxConns != 0 {
				return State{}, fmt.Errorf("%s: file_max_conns is only for source config", where)
			}
		case SourceConfig:
			if b.FileWeight < 0 || b.FileWeight > maxWeight {
				return State{}, fmt.Errorf("%s: file_weight %d out of range 0-%d", where, b.FileWeight, maxWeight)
			}
			if err := limits.CheckMaxConns(int64(b.FileMaxConns)); err != nil {
				return State{}, fmt.Errorf("%s: file_max_conns: %v", where, err)
			}
		default:
			return State{}, fmt.Errorf("%s: source %q, want api or config", where, b.Source)
		}
		k := [2]string{b.Pool, b.Address}
		if j, dup := seen[k]; dup {
			if raw[j] == raw[i] {
				return State{}, fmt.Errorf("%s: %s %s duplicates backends[%d]", where, b.Pool, b.Address, j)
			}
			st.merged = append(st.merged, fmt.Sprintf("%s/%s: %s is another spelling of backends[%d] (%s), which applies", b.Pool, raw[i], where, j, raw[j]))
			continue
		}
		seen[k] = i
		kept = append(kept, b)
	}
	st.Backends = kept
	return st, nil
}

// SaveState writes st to path atomically and durably: a temporary file in the same
// directory is written, synced and renamed over path, then the directory is
// synced, so that after a crash path holds either the old state or the new one,
// never a mix. Safe for concurrent use on different paths; callers serialise
// writes to one path (the Registry does, under its write transaction).
func SaveState(path string, st State) (err error) {
	st.Version = StateVersion
	if st.Backends == nil {
		st.Backends = []SavedBackend{}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("registry: state file: %w", err)
	}
	data = append(data, '\n')
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("registry: state file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("registry: state file: %w", err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("registry: state file: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("registry: state file: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("registry: state file: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("registry: state file: %w", err)
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("registry: state file: sync dir: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("registry: state file: sync dir: %w", err)
	}
	return nil
}
