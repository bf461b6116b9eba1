package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// version overrides the version read from the build information when set at
// build time with -ldflags "-X main.version=...".
var version string

// buildInfo is what `floodgate version`, the start log line and
// floodgate_build_info say about the binary.
type buildInfo struct {
	// Version is main.version if set, else the main module's version (a tag,
	// or a pseudo-version when built from a VCS checkout), else "dev".
	Version string
	// Revision and Time are the VCS commit and its time; empty when the
	// binary was built without VCS information (-buildvcs=false, or not from
	// a checkout).
	Revision, Time string
	// Modified is true when the work tree had uncommitted changes.
	Modified bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// build is this binary's build information, read once.
var build = readBuildInfo(version, debug.ReadBuildInfo)

// readBuildInfo assembles buildInfo from override (main.version) and read
// (debug.ReadBuildInfo; a parameter so that tests can give any).
func readBuildInfo(override string, read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: override}
	bi, ok := read()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	b.GoVersion = bi.GoVersion
	if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the line `floodgate version` prints, e.g.
// "floodgate v1.4.0 (revision 3f2c1e0d9a8b, 2026-12-01T10:00:00Z, modified) go1.26.8".
func (b buildInfo) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "floodgate %s", b.Version)
	var vcs []string
	if b.Revision != "" {
		vcs = append(vcs, "revision "+b.Revision)
	}
	if b.Time != "" {
		vcs = append(vcs, b.Time)
	}
	if b.Modified {
		vcs = append(vcs, "modified")
	}
	if len(vcs) > 0 {
		fmt.Fprintf(&s, " (%s)", strings.Join(vcs, ", "))
	}
	if b.GoVersion != "" {
		fmt.Fprintf(&s, " %s", b.GoVersion)
	}
	return s.String()
}

// Collector exports floodgate_build_info{version,revision,goversion} 1, the
// usual build-info gauge: join on it to label other series by build. The
// revision is "unknown" when the binary has no VCS information, with a
// "-modified" suffix when the work tree had uncommitted changes.
func (b buildInfo) Collector() prometheus.Collector {
	rev := b.Revision
	if rev == "" {
		rev = "unknown"
	}
	if b.Modified {
		rev += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "floodgate_build_info",
		Help:        "Always 1; its labels say which build is running: version (main.version, the module version, or dev), VCS revision, Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": rev, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}
