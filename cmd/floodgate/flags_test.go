package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpExitsZero: -h and -help, on floodgate and on each subcommand with
// flags, print the usage on stdout and exit 0, as asked; a wrong flag still
// prints it on stderr and exits 2.
func TestHelpExitsZero(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "floodgate -check -config PATH"},
		{[]string{"-help"}, "-log-level"},
		{[]string{"--help"}, "-ignore-state"},
		{[]string{"status", "-h"}, "usage: floodgate status"},
		{[]string{"demo", "-h"}, "usage: floodgate demo"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(c.args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), c.want) || stderr.Len() != 0 {
			t.Errorf("floodgate %s: exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout", strings.Join(c.args, " "), code, stdout.String(), stderr.String(), c.want)
		}
	}
	for _, args := range [][]string{{"-nope"}, {"demo", "-nope"}, {"-config"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") || stdout.Len() != 0 {
			t.Errorf("floodgate %s: exit %d, stdout %q, stderr %q; want exit 2 and the usage on stderr", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}
