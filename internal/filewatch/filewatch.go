// Package filewatch reports, debounced, that one of a set of files may have
// changed on disk. The config file (package conf) and the TLS certificates
// (package proxy) both use it.
//
// It watches the files' directories, not the files: editors save by writing a
// temporary file and renaming it over the old one, certificate renewal tools
// do the same, and Kubernetes updates a mounted ConfigMap or Secret by flipping
// a "..data" symlink; a watch on the file itself would die with the first
// replaced inode or see nothing at all. Events are filtered to the names that
// make up the files: each file's own name, and the entries of its directory
// that its symlink chain goes through (tls.crt -> ..data/tls.crt, ..data ->
// ..2024_x), so that other files of the same directory (a log written at every
// line, a state file, a journal) trigger nothing.
//
// It imports only the standard library and fsnotify, so that conf and the
// runtime packages can both use it.
package filewatch

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
// temporary file, rename it, change its mode), and a Kubernetes volume update
// is a handful of creates, renames and removes.
const DefaultDebounce = 200 * time.Millisecond

// maxLinks bounds the symlink chain a Watcher follows, as the kernel does (40).
const maxLinks = 40

// Watcher reports that a file of its set may have changed. It only says "look
// again": the caller reads the files and compares their contents to decide
// whether anything changed. A Watcher is used by one goroutine, which calls Run
// once.
type Watcher struct {
	files    []string // cleaned
	debounce time.Duration
	fw       *fsnotify.Watcher
	names    map[string]bool // paths whose events count, as last seen

	// OnEvent, when set before Run, sees every event's path and whether it
	// counted. For tests.
	OnEvent func(path string, relevant bool)
}

// New starts watching the directories of files. debounce <= 0 means
// DefaultDebounce. The directories must exist; the files need not (they may
// appear later). Call Run, or Close if Run is never called. An error starts
// with "watch" and names the directory that could not be watched.
func New(files []string, debounce time.Duration) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &Watcher{debounce: debounce, fw: fw}
	dirs := map[string]bool{}
	for _, f := range files {
		f = filepath.Clean(f)
		w.files = append(w.files, f)
		if dir := filepath.Dir(f); !dirs[dir] {
			dirs[dir] = true
			if err := fw.Add(dir); err != nil {
				fw.Close()
				return nil, &os.PathError{Op: "watch", Path: dir, Err: err}
			}
		}
	}
	w.names = w.chains()
	return w, nil
}

// Run calls changed, from Run's goroutine, each time a burst of events about
// the files has been followed by the debounce period without another one.
// Watch errors (such as an event queue overflow, after which a change may have
// been missed) are passed to onError, which may be nil, and are also reported
// as a change, to be safe. Run returns nil when ctx ends, after closing the
// watch.
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
				onError(err)
			}
			timer.Reset(w.debounce)
		case <-timer.C:
			changed()
		}
	}
}

// Close stops the watch without Run.
func (w *Watcher) Close() error { return w.fw.Close() }

// relevant reports whether ev concerns a file: it names a file or an entry of
// a file's symlink chain, before or after the event (a flipped symlink changes
// the chain). Mode changes alone do not count.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	before := w.names
	w.names = w.chains()
	ok := ev.Op != fsnotify.Chmod && (before[name] || w.names[name])
	if w.OnEvent != nil {
		w.OnEvent(name, ok)
	}
	return ok
}

// chains returns the paths that the files go through: each file, and every
// entry of its directory reached by following symlinks from it.
func (w *Watcher) chains() map[string]bool {
	names := map[string]bool{}
	for _, f := range w.files {
		chain(names, filepath.Dir(f), filepath.Base(f), 0)
	}
	return names
}

// chain adds dir/name to names and, when it is a symlink, the first component
// of its target if that is an entry of dir: with "..data/config.yaml" that is
// "..data", itself a symlink, followed in turn.
func chain(names map[string]bool, dir, name string, depth int) {
	p := filepath.Join(dir, name)
	if name == "" || names[p] || depth > maxLinks {
		return
	}
	names[p] = true
	target, err := os.Readlink(p)
	if err != nil {
		return // not a symlink, or gone
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(dir, target)
	}
	rel, err := filepath.Rel(dir, filepath.Clean(target))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(rel, string(filepath.Separator))
	if first != ".." && first != "." {
		chain(names, dir, first, depth+1)
	}
}
