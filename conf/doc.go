// Package conf owns the configuration file: its YAML schema, strict decoding with
// line numbers, defaults, and complete validation into typed values. It does no I/O
// beyond reading the file it is given, and the runtime packages never import it:
// cmd/floodgate turns a *Config into each package's Options.
package conf
