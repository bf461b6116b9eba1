package conf

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/floodgate/floodgate/internal/filewatch"
)

// DefaultDebounce is how long a Watcher waits after the last event of a burst
// before it reports a change: an editor's save is several events (write a
// temporary file, rename it, change its mode), and a Kubernetes ConfigMap update
// is a handful of creates, renames and removes.
const DefaultDebounce = filewatch.DefaultDebounce

// Watcher reports that a config file may have changed. It watches the file's
// directory, not the file, and counts only the events about the names that make
// up the file, its own and those of its symlink chain (config.yaml ->
// ..data/config.yaml, ..data -> ..2024_x): see package internal/filewatch.
//
// It only says "look again": the caller reads the file and compares its hash to
// decide whether anything changed. A Watcher is used by one goroutine, which
// calls Run once.
type Watcher struct {
	dir string
	fw  *filewatch.Watcher

	// onEvent, when set by tests, sees every event's base name and whether
	// it counted.
	onEvent func(name string, relevant bool)
}

// NewWatcher starts watching the directory of path. debounce <= 0 means
// DefaultDebounce. The directory must exist; the file need not (it may appear
// later). Call Run, or Close if Run is never called.
func NewWatcher(path string, debounce time.Duration) (*Watcher, error) {
	fw, err := filewatch.New([]string{path}, debounce)
	if err != nil {
		return nil, fmt.Errorf("conf: %w", err)
	}
	return &Watcher{dir: filepath.Dir(path), fw: fw}, nil
}

// Run calls changed, from Run's goroutine, each time a burst of events about the
// file has been followed by the debounce period without another one. Watch errors
// (such as an event queue overflow, after which a change may have been missed)
// are passed to onError, which may be nil; an overflow is also reported as a
// change, to be safe. Run returns nil when ctx ends, after closing the watch.
func (w *Watcher) Run(ctx context.Context, changed func(), onError func(error)) error {
	if w.onEvent != nil {
		w.fw.OnEvent = func(path string, relevant bool) { w.onEvent(filepath.Base(path), relevant) }
	}
	return w.fw.Run(ctx, changed, func(err error) {
		if onError != nil {
			onError(fmt.Errorf("conf: watch %s: %w", w.dir, err))
		}
	})
}

// Close stops the watch without Run.
func (w *Watcher) Close() error { return w.fw.Close() }
