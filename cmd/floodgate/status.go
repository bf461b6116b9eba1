package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/floodgate/floodgate/admin"
)

// defaultAdmin is where `floodgate status` looks when neither -admin nor
// FLOODGATE_ADMIN says otherwise: the default admin.listen.
const defaultAdmin = "http://127.0.0.1:9090"

// runStatus is `floodgate status`: the status page's facts as aligned tables,
// for ssh sessions and scripts, or as JSON with -json. It reads GET
// /api/v1/status from a running floodgate.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("floodgate status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin", envOr("FLOODGATE_ADMIN", defaultAdmin), "admin API address, as URL or host:port (env FLOODGATE_ADMIN)")
	tokenFile := fs.String("token-file", os.Getenv("FLOODGATE_TOKEN_FILE"), "file holding the admin token, when admin.token_file is set (env FLOODGATE_TOKEN_FILE)")
	asJSON := fs.Bool("json", false, "print the status as JSON (GET /api/v1/status), for machines")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if !parseFlags(fs, args, "usage: floodgate status [-admin URL] [-token-file FILE] [-json]\n\nflags:\n") {
		return 2
	}
	var token []byte
	if *tokenFile != "" {
		var err error
		if token, err = loadToken(slog.New(slog.DiscardHandler), *tokenFile); err != nil {
			fmt.Fprintf(stderr, "floodgate status: %s\n", strings.TrimPrefix(err.Error(), "admin."))
			return 1
		}
	}
	base := strings.TrimRight(*adminURL, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	raw, st, err := fetchStatus(ctx, base, token)
	if err == nil && st.WindowSeconds == 0 {
		// The admin server has a single reading of the counters: take a
		// second one a sample interval later, so that rates can be shown.
		select {
		case <-time.After(admin.SampleInterval):
			raw, st, err = fetchStatus(ctx, base, token)
		case <-ctx.Done():
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "floodgate status: %v\n", err)
		return 1
	}
	if *asJSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			fmt.Fprintf(stderr, "floodgate status: %v\n", err)
			return 1
		}
		buf.WriteByte('\n')
		_, _ = stdout.Write(buf.Bytes())
		return 0
	}
	renderStatus(stdout, base, st)
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// fetchStatus gets GET /api/v1/status and decodes it.
func fetchStatus(ctx context.Context, base string, token []byte) ([]byte, admin.Status, error) {
	var st admin.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/status", nil)
	if err != nil {
		return nil, st, err
	}
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, st, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, st, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = " (give the admin token with -token-file)"
		}
		return nil, st, fmt.Errorf("GET %s: %s: %s%s", req.URL, resp.Status, e.Error, hint)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, st, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	if st.Time.IsZero() {
		return nil, st, errors.New("GET " + req.URL.String() + ": not a floodgate status answer")
	}
	return raw, st, nil
}

// renderStatus writes st as aligned tables: pools, backends, routes, then
// the cache and the capture journal. Ages are relative to st.Time, so the
// output depends on the status only.
func renderStatus(w io.Writer, source string, st admin.Status) {
	now := st.Time
	rates := "rates over " + fmtSeconds(st.WindowSeconds)
	if st.WindowSeconds == 0 {
		rates = "no rates yet"
	}
	fmt.Fprintf(w, "floodgate %s  generation %d  %s  %s\n\n", strings.TrimPrefix(strings.TrimPrefix(source, "http://"), "https://"),
		st.Generation, now.UTC().Format("2006-01-02 15:04:05 UTC"), rates)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tMODE\tADMISSION\tREQ/S\t5XX\tP95\tIN FLIGHT\tQUEUE\tWAIT\tREASON")
	for _, p := range st.Pools {
		mode, level, reason := "-", "-", "degraded mode not configured"
		if m := p.Mode; m != nil {
			mode, level, reason = m.Mode, m.Level, m.Reason
			if m.Mode == "degraded" {
				mode = "DEGRADED"
			}
			if m.Override != "auto" {
				mode += " (override)"
			}
			if m.Since != nil && reason != "" {
				reason += " (since " + m.Since.UTC().Format("15:04:05") + ", " + fmtAge(now.Sub(*m.Since)) + ")"
			}
		}
		inflight := fmt.Sprint(p.InFlight)
		if p.Capacity > 0 {
			inflight += "/" + fmt.Sprint(p.Capacity)
		}
		queue := "-"
		if p.Queue.Max > 0 {
			queue = fmt.Sprintf("%d/%d", p.Queue.Depth, p.Queue.Max)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, mode, level, fmtRate(p.RequestsPerSecond),
			fmtPct(p.ErrorRate), fmtDur(p.P95Seconds), inflight, queue, fmtDur(p.Queue.WaitSeconds), orDash(reason))
	}
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintln(tw, "POOL\tBACKEND\tSTATE\tWEIGHT\tIN FLIGHT\tREQ/S\tERRORS\tUP FOR\tCHECK")
	n := 0
	for _, p := range st.Pools {
		for _, b := range p.Backends {
			n++
			state := b.State
			if b.Warming {
				state = "up, slow start"
			}
			weight := fmt.Sprint(b.Weight)
			if b.EffectiveWeight != float64(b.Weight) {
				weight = fmt.Sprintf("%g of %d", b.EffectiveWeight, b.Weight)
			}
			inflight := fmt.Sprint(b.InFlight)
			if b.Limit > 0 {
				inflight += "/" + fmt.Sprint(b.Limit)
			}
			upFor := "-"
			switch {
			case b.State == admin.StatusEjected && b.EjectedUntil != nil:
				upFor = "ejected until " + b.EjectedUntil.UTC().Format("15:04:05")
			case b.UpSince != nil && b.State != "down":
				upFor = fmtAge(now.Sub(*b.UpSince))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, b.Address, state, weight, inflight,
				fmtRate(b.RequestsPerSecond), fmtPct(b.ErrorRate), upFor, orDash(b.CheckError))
		}
	}
	if n == 0 {
		fmt.Fprintln(tw, "(no backends)")
	}
	tw.Flush()

	if len(st.Routes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "ROUTE\tPOOL\tREQ/S\t5XX\tP95\tDEGRADED/S\tTOTAL")
		for _, r := range st.Routes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, r.Pool, fmtRate(r.RequestsPerSecond), fmtPct(r.ErrorRate),
				fmtDur(r.P95Seconds), fmtRate(r.DegradedPerSecond), r.Requests)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	if c := st.Cache; c != nil {
		size := fmtBytes(c.Bytes)
		if c.MaxBytes > 0 {
			size += " of " + fmtBytes(c.MaxBytes) + " (" + fmtPct(floatPtr(float64(c.Bytes)/float64(c.MaxBytes))) + ")"
		}
		fmt.Fprintf(w, "cache    hit ratio %s now, %s since start; %s; %d objects; %d evicted\n",
			fmtPct(c.HitRatio), fmtPct(c.HitRatioTotal), size, c.Objects, c.Evicted)
	} else {
		fmt.Fprintln(w, "cache    not configured")
	}
	if c := st.Captures; c != nil {
		backlog := fmt.Sprint(c.Backlog)
		if len(c.BacklogByPool) > 0 {
			var parts []string
			for p, n := range c.BacklogByPool {
				parts = append(parts, fmt.Sprintf("%s %d", p, n))
			}
			sort.Strings(parts)
			backlog += " (" + strings.Join(parts, ", ") + ")"
		}
		paused := "no"
		if len(c.PausedPools) > 0 {
			paused = strings.Join(c.PausedPools, ", ")
		}
		fmt.Fprintf(w, "capture  backlog %s; dead letters %d; captured %d, delivered %d; replay paused: %s\n",
			backlog, c.DeadLetters, c.Captured, c.Delivered, paused)
		if len(c.Dead) > 0 {
			fmt.Fprintln(w)
			fmt.Fprintln(tw, "DEAD LETTER\tPOOL\tROUTE\tATTEMPTS\tDEAD AT\tREASON")
			for _, d := range c.Dead {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Pool, d.Route, d.Attempts, d.DeadAt.UTC().Format("2006-01-02 15:04:05"), d.Reason)
			}
			tw.Flush()
			if c.DeadLetters > len(c.Dead) {
				fmt.Fprintf(w, "(%d more: GET /api/v1/captures)\n", c.DeadLetters-len(c.Dead))
			}
		}
	} else {
		fmt.Fprintln(w, "capture  not configured")
	}
}

func floatPtr(v float64) *float64 { return &v }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// The formats match the status page's (admin/ui/app.js).

func fmtRate(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v == 0:
		return "0"
	case *v < 10:
		return fmt.Sprintf("%.1f", *v)
	}
	return fmt.Sprintf("%.0f", *v)
}

func fmtPct(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v == 0:
		return "0%"
	case *v < 0.001:
		return "<0.1%"
	case *v < 0.1:
		return fmt.Sprintf("%.1f%%", *v*100)
	}
	return fmt.Sprintf("%.0f%%", *v*100)
}

func fmtDur(v *float64) string {
	if v == nil {
		return "-"
	}
	s := *v
	switch {
	case s < 0.001:
		return fmt.Sprintf("%.2fms", s*1000)
	case s < 0.01:
		return fmt.Sprintf("%.1fms", s*1000)
	case s < 1:
		return fmt.Sprintf("%.0fms", s*1000)
	case s < 10:
		return fmt.Sprintf("%.2fs", s)
	}
	return fmt.Sprintf("%.1fs", s)
}

func fmtSeconds(s float64) string { return fmt.Sprintf("%gs", s) }

// fmtAge is a duration rounded to the second, shortened to its two largest
// units: 42s, 3m12s, 5h07m, 3d04h.
func fmtAge(d time.Duration) string {
	s := int64(math.Round(max(0, d.Seconds())))
	days, s := s/86400, s%86400
	h, s := s/3600, s%3600
	m, s := s/60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%02dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

func fmtBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d B", n)
	case v < 10:
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}
