package capture

import (
	"io"
	"os"
	"path/filepath"
)

// file is the part of *os.File the journal uses. It exists so that tests can
// make a Write or a Sync fail at a chosen moment (fault_test.go); production
// code always uses osFS.
type file interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

// fileSystem is the directory-level counterpart of file.
type fileSystem interface {
	MkdirAll(dir string, perm os.FileMode) error
	ReadDir(dir string) ([]os.DirEntry, error)
	// OpenFile opens an existing segment, or creates or truncates one.
	OpenFile(name string, flag int, perm os.FileMode) (file, error)
	Remove(name string) error
	// SyncDir fsyncs a directory, so that creating or removing a file in it
	// survives a crash.
	SyncDir(dir string) error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

func (osFS) ReadDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(dir) }

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
