package conf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a Watcher waits after the last event of a burst
// before it reports a change: an editor's save is several events (write a
// temporary file, rename it, change its mode), and a Kubernetes ConfigMap update
// is a handful of creates, renames and removes.
const DefaultDebounce = 200 * time.Millisecond

// maxLinks bounds the symlink chain a Watcher follows, as the kernel does (40).
const maxLinks = 40

// Watcher reports that a config file may have changed. It watches the file's
// directory, not the file: editors save by writing a temporary file and renaming
// it over the old one, and Kubernetes updates a mounted ConfigMap by flipping a
// "..data" symlink, and a watch on the file itself would die with the first
// replaced inode or see nothing at all. Events are filtered to the names that
// make up the file: its own name, and the entries of the directory its symlink
// chain goes through (config.yaml -> ..data/config.yaml, ..data -> ..2024_x), so
// unrelated files in the same directory (a state file, a journal) do not
// trigger anything.
//
// It only says "look again": the caller reads the file and compares its hash to
// decide whether anything changed. A Watcher is used by one goroutine, which
// calls Run once.
type Watcher struct {
	path, dir string
	debounce  time.Duration
	fw        *fsnotify.Watcher
	names     map[string]bool // directory entries that make up the file, as last seen

	// onEvent, when set by tests, sees every event and whether it counted.
	onEvent func(name string, relevant bool)
}

// NewWatcher starts watching the directory of path. debounce <= 0 means
// DefaultDebounce. The directory must exist; the file need not (it may appear
// later). Call Run, or Close if Run is never called.
func NewWatcher(path string, debounce time.Duration) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("conf: watch %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return nil, fmt.Errorf("conf: watch %s: %w", dir, err)
	}
	w := &Watcher{path: path, dir: dir, debounce: debounce, fw: fw}
	w.names = w.chain()
	return w, nil
}

// Run calls changed, from Run's goroutine, each time a burst of events about the
// file has been followed by the debounce period without another one. Watch errors
// (such as an event queue overflow, after which a change may have been missed)
// are passed to onError, which may be nil; an overflow is also reported as a
// change, to be safe. Run returns nil when ctx ends, after closing the watch.
func (w *Watcher) Run(ctx context.Context, changed func(), onError func(error)) error {
	defer w.fw.Close()
	timer := time.NewTimer(w.debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fw.Events:
			if !ok {
				return nil
			}
			if w.relevant(ev) {
				timer.Reset(w.debounce)
			}
		case err, ok := <-w.fw.Errors:
			if !ok {
				return nil
			}
			if onError != nil {
				onError(fmt.Errorf("conf: watch %s: %w", w.dir, err))
			}
			timer.Reset(w.debounce)
		case <-timer.C:
			changed()
		}
	}
}

// Close stops the watch without Run.
func (w *Watcher) Close() error { return w.fw.Close() }

// relevant reports whether ev concerns the file: it names the file or an entry
// of its symlink chain, before or after the event (a flipped symlink changes
// the chain). Mode changes alone do not count.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Base(ev.Name)
	before := w.names
	w.names = w.chain()
	ok := ev.Op != fsnotify.Chmod && (before[name] || w.names[name])
	if w.onEvent != nil {
		w.onEvent(name, ok)
	}
	return ok
}

// chain returns the names in the watched directory that the file's path goes
// through: its own name, and every directory entry reached by following
// symlinks from it that lies in the same directory.
func (w *Watcher) chain() map[string]bool {
	names := map[string]bool{}
	var add func(name string, depth int)
	add = func(name string, depth int) {
		if name == "" || names[name] || depth > maxLinks {
			return
		}
		names[name] = true
		target, err := os.Readlink(filepath.Join(w.dir, name))
		if err != nil {
			return // not a symlink, or gone
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(w.dir, target)
		}
		// Each component of the target that is an entry of the directory:
		// with "..data/config.yaml" that is "..data", itself a symlink.
		rel, err := filepath.Rel(w.dir, filepath.Clean(target))
		if err != nil {
			return
		}
		first, _, _ := strings.Cut(rel, string(filepath.Separator))
		if first != ".." && first != "." {
			add(first, depth+1)
		}
	}
	add(filepath.Base(w.path), 0)
	return names
}
