package main

import (
	"runtime"
	"testing"
	"time"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/registry"
)

func TestDryBuildLeavesNoGoroutine(t *testing.T) {
	cfg, err := conf.Parse("t.yaml", []byte("pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rcfg, err := registryConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dryBuild(cfg, rcfg, registry.State{}); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 20 {
		if _, err := dryBuild(cfg, rcfg, registry.State{}); err != nil {
			t.Fatal(err)
		}
	}
	// Goroutines that were stopped may take a moment to return.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before 20 dry builds, %d after: a dry build leaves some running", before, runtime.NumGoroutine())
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling a count; nothing to block on
	}
}
