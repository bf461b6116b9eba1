// Package conf owns the configuration file: its YAML schema, strict decoding with
// line numbers, defaults, and complete validation into typed values, and watching
// the file for changes (Watcher, on its directory). It does no I/O beyond the file
// it is given and that file's directory, and the runtime packages never import it:
// cmd/floodgate turns a *Config into each package's Options.
package conf
