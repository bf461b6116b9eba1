package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/internal/filewatch"
	"github.com/floodgate/floodgate/internal/panics"
)

// CertFiles names one certificate chain and its key, in PEM.
type CertFiles struct {
	CertFile, KeyFile string
}

// CertStore holds the server certificates and chooses one per connection by SNI:
// an exact name first, then a wildcard for the name's parent, then the first
// certificate (what HAProxy and nginx do for an unknown name). The set is swapped
// atomically, so a reload never disturbs a handshake in progress, and connections
// already established keep the certificate they were opened with. Safe for
// concurrent use.
type CertStore struct {
	files []CertFiles
	log   *slog.Logger
	set   atomic.Pointer[certSet]
	hash  [sha256.Size]byte // of the files last loaded (or tried)

	mu        sync.Mutex        // serialises Reload, guards the three below
	failed    [sha256.Size]byte // the contents that last failed to load, not retried
	failedErr error             // ... and why
	lastErr   string            // the last error logged
	reloads   atomic.Uint64
	errors    atomic.Uint64
}

type certSet struct {
	byName map[string]*tls.Certificate // exact names and "*.suffix" wildcards, lower case
	first  *tls.Certificate
}

// NewCertStore loads every pair; any failure is an error naming the file.
func NewCertStore(files []CertFiles, log *slog.Logger) (*CertStore, error) {
	if len(files) == 0 {
		return nil, errors.New("tls: no certificates")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cs := &CertStore{files: files, log: log}
	set, sum, err := loadCerts(files)
	if err != nil {
		return nil, err
	}
	cs.set.Store(set)
	cs.hash = sum
	return cs, nil
}

func loadCerts(files []CertFiles) (*certSet, [sha256.Size]byte, error) {
	raw, sum, err := readCerts(files)
	if err != nil {
		return nil, sum, err
	}
	set, err := parseCerts(files, raw)
	return set, sum, err
}

// readCerts reads every certificate and key file, in order, and hashes them.
func readCerts(files []CertFiles) ([][]byte, [sha256.Size]byte, error) {
	h := sha256.New()
	raw := make([][]byte, 0, 2*len(files))
	for _, f := range files {
		for _, path := range []string{f.CertFile, f.KeyFile} {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, [32]byte{}, fmt.Errorf("tls: %w", err)
			}
			h.Write(b)
			raw = append(raw, b)
		}
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return raw, sum, nil
}

// parseCerts builds the set from what readCerts read.
func parseCerts(files []CertFiles, raw [][]byte) (*certSet, error) {
	set := &certSet{byName: make(map[string]*tls.Certificate)}
	for i, f := range files {
		certPEM, keyPEM := raw[2*i], raw[2*i+1]
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls: %s / %s: %w", f.CertFile, f.KeyFile, err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("tls: %s: %w", f.CertFile, err)
		}
		if time.Now().After(leaf.NotAfter) {
			return nil, fmt.Errorf("tls: %s: certificate expired on %s", f.CertFile, leaf.NotAfter.Format(time.DateOnly))
		}
		cert.Leaf = leaf
		c := &cert
		if set.first == nil {
			set.first = c
		}
		names := leaf.DNSNames
		if len(names) == 0 && leaf.Subject.CommonName != "" {
			names = []string{leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(n)
			if _, dup := set.byName[n]; !dup { // the first certificate for a name wins
				set.byName[n] = c
			}
		}
	}
	return set, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (cs *CertStore) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := cs.set.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if c := set.byName[name]; c != nil {
		return c, nil
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c := set.byName["*"+name[i:]]; c != nil {
			return c, nil
		}
	}
	return set.first, nil
}

// TLSConfig is the server configuration: TLS 1.2 at least, Go's default cipher
// suites (modern, forward-secret), HTTP/1.1 only (no h2 offered).
func (cs *CertStore) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cs.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}

// Reload re-reads the files. A file that fails to load leaves the whole previous
// set serving and returns the error; unchanged files are not reloaded. A failure
// is counted and logged once per change of the files: contents that failed
// already fail again without a word, and so does a file that stays unreadable
// with the same error.
func (cs *CertStore) Reload() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	raw, sum, err := readCerts(cs.files)
	if err != nil {
		if msg := err.Error(); msg != cs.lastErr { // the same file still missing is no news
			cs.failLocked(msg)
		}
		return err
	}
	if sum == cs.hash {
		cs.lastErr = ""
		return nil
	}
	if sum == cs.failed {
		return cs.failedErr
	}
	set, err := parseCerts(cs.files, raw)
	if err != nil {
		cs.failed, cs.failedErr = sum, err
		cs.failLocked(err.Error())
		return err
	}
	cs.set.Store(set)
	cs.hash, cs.failed, cs.failedErr, cs.lastErr = sum, [sha256.Size]byte{}, nil, ""
	cs.reloads.Add(1)
	cs.log.Info("certificates reloaded", "certificates", len(cs.files))
	return nil
}

// failLocked counts and logs a failed reload. cs.mu must be held.
func (cs *CertStore) failLocked(msg string) {
	cs.lastErr = msg
	cs.errors.Add(1)
	cs.log.Error("certificate reload failed, keeping the current certificates", "error", msg)
}

// Reloads returns how many reloads changed the certificates, and how many failed.
func (cs *CertStore) Reloads() (ok, failed uint64) { return cs.reloads.Load(), cs.errors.Load() }

// Watch reloads when a certificate or key file changes on disk, until ctx ends.
// It watches the files' directories, not the files (tools that renew
// certificates, and Kubernetes secrets, replace files by rename or symlink
// swap), and only events about the files and their symlink chains count: a
// directory that also holds the log, written at every line, must not make the
// watcher reload (and log a failing certificate) in a loop. Events are
// debounced. See package internal/filewatch.
func (cs *CertStore) Watch(ctx context.Context) error {
	var paths []string
	for _, f := range cs.files {
		paths = append(paths, f.CertFile, f.KeyFile)
	}
	w, err := filewatch.New(paths, filewatch.DefaultDebounce)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	go func() {
		_ = w.Run(ctx, cs.watchReload, func(err error) { cs.log.Warn("certificate watch", "error", err.Error()) })
	}()
	return nil
}

// watchReload is the watcher's Reload: failures are logged inside, and a panic
// (in the parsing of files anyone with write access to the directory controls)
// is contained, so the watcher and the process go on.
func (cs *CertStore) watchReload() {
	defer panics.Recover(cs.log, "certificate reload")
	_ = cs.Reload()
}

// ServeTLS accepts TLS connections on ln with the store's certificates until
// Shutdown.
func (s *Server) ServeTLS(ln net.Listener, cs *CertStore) error {
	return s.serveOn(ln, tls.NewListener(s.wrap(ln), cs.TLSConfig()))
}
