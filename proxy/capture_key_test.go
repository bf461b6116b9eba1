package proxy

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/internal/httpwire"
)

// idemOrigin is a loopback origin that deduplicates orders by Idempotency-Key,
// as the IETF draft means the header: the first request with a key is
// processed, later ones get the first answer again and count as duplicates.
// Requests without a key are processed every time.
type idemOrigin struct {
	*rawBackend
	mu         sync.Mutex
	processed  map[string]int // by key
	duplicates int
	heads      map[string]string // target → head of the request as it arrived
}

func newIdemOrigin(t *testing.T) *idemOrigin {
	o := &idemOrigin{processed: map[string]int{}, heads: map[string]string{}}
	o.rawBackend = newRawBackend(t, func(head string, _ []byte) string {
		key := string(httpwire.Value([]byte(head[strings.Index(head, "\r\n")+2:]), "Idempotency-Key"))
		target := strings.Fields(head)[1]
		o.mu.Lock()
		defer o.mu.Unlock()
		o.heads[target] = head
		if key != "" && o.processed[key] > 0 {
			o.duplicates++
			return "HTTP/1.1 200 OK\r\nIdempotent-Replayed: true\r\nContent-Length: 2\r\n\r\nok"
		}
		o.processed[key]++
		return "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
	})
	return o
}

func (o *idemOrigin) head(target string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.heads[target]
}

// fieldValues returns the values of every field called name in a request head.
func fieldValues(head, name string) []string {
	var out []string
	for it := httpwire.Fields([]byte(head[strings.Index(head, "\r\n")+2:])); ; {
		k, v, ok := it.Next()
		if !ok {
			return out
		}
		if httpwire.EqualFoldBytes(k, []byte(name)) {
			out = append(out, string(v))
		}
	}
}

func captureIDOf(t *testing.T, resp string) string {
	t.Helper()
	const h = "Floodgate-Capture-Id: "
	i := strings.Index(resp, h)
	if statusOfRaw(resp) != 202 || i < 0 {
		t.Fatalf("want a 202 with a capture id, got %q", resp)
	}
	id := resp[i+len(h):]
	return id[:strings.Index(id, "\r\n")]
}

// TestReplayKeepsClientKey is issue 15's fourth finding: replay sends the
// client's Idempotency-Key unchanged, the capture id only for an order without
// one, and the capture id in Floodgate-Capture-Id in both cases. An origin that
// deduplicates by the client's key processes an order once although it got it
// twice: replayed by floodgate and sent directly by the client.
func TestReplayKeepsClientKey(t *testing.T) {
	j, c := openCapture(t)
	origin := newIdemOrigin(t)
	px, mon := degradedProxy(t, Options{Capture: c}, PoolSpec{}, origin.addr(),
		RouteSpec{Name: "checkout", PathPrefix: "/checkout", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionCapture, CaptureAlways: true})
	mon.SetOverride("p", degrade.OverrideDegraded)

	order := func(target, extra string) string {
		return "POST " + target + " HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n" + extra + "Content-Length: 2\r\n\r\n{}"
	}
	long := strings.Repeat("0123456789abcdef", 600) // 9,600 bytes: past bufio's 4 KiB, under the 16 KiB head limit
	cases := []struct {
		target, extra string
		key           string // what must arrive; "" = the capture id
	}{
		{"/checkout?o=keyed", "Idempotency-Key: K-1\r\n", "K-1"},
		{"/checkout?o=none", "", ""},
		{"/checkout?o=empty", "Idempotency-Key:   \r\n", ""},
		{"/checkout?o=quoted", "Idempotency-Key: \"8e03978e:40d5; x=\\\"y\\\"\"\r\n", "\"8e03978e:40d5; x=\\\"y\\\"\""},
		{"/checkout?o=long", "Idempotency-Key: " + long + "\r\n", long},
		{"/checkout?o=forged", "Floodgate-Capture-Id: forged\r\nIdempotency-Key: K-2\r\n", "K-2"},
	}
	ids := map[string]string{}
	for _, tc := range cases {
		r, _ := exchange(t, px.addr, order(tc.target, tc.extra), 300*time.Millisecond)
		ids[tc.target] = captureIDOf(t, r)
	}
	// The client also sends the first order straight to the origin (another
	// path, another floodgate), with its key.
	if r, _ := exchange(t, origin.addr(), order("/direct", "Idempotency-Key: K-1\r\n"), 300*time.Millisecond); statusOfRaw(r) != 201 {
		t.Fatalf("direct order: %q", r)
	}

	mon.SetOverride("p", degrade.OverrideNormal)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := j.StartReplay(ctx, px.s.Sender(), capture.ReplayOptions{Ready: px.s.PoolReady})
	defer stop()
	waitUntil(t, "every order replayed", func() bool { return j.Stats().Backlog["p"] == 0 })

	for _, tc := range cases {
		head, id := origin.head(tc.target), ids[tc.target]
		want := tc.key
		if want == "" {
			want = id
		}
		if got := fieldValues(head, "Idempotency-Key"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: Idempotency-Key %.60q, want %.60q", tc.target, got, want)
		}
		if got := fieldValues(head, "Floodgate-Capture-Id"); len(got) != 1 || got[0] != id {
			t.Errorf("%s: Floodgate-Capture-Id %q, want [%s]", tc.target, got, id)
		}
	}
	origin.mu.Lock()
	defer origin.mu.Unlock()
	if origin.processed["K-1"] != 1 || origin.duplicates != 1 {
		t.Errorf("order K-1 processed %d times (%d duplicates recognised), want once and one duplicate", origin.processed["K-1"], origin.duplicates)
	}
}

// TestReplayJournalOfPreviousVersion: a journal written before issue 15 (the
// on-disk format is unchanged; the capture path of the previous version wrote
// testdata/capture-v1) replays with the client's keys, read from the stored
// header, and the capture ids in Floodgate-Capture-Id.
func TestReplayJournalOfPreviousVersion(t *testing.T) {
	dir := t.TempDir()
	seg, err := os.ReadFile(filepath.Join("testdata", "capture-v1", "seg-00000001.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seg-00000001.log"), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := capture.Open(capture.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	recs := j.Pending("p", 100)
	if len(recs) != 4 {
		t.Fatalf("%d pending records in the old journal, want 4", len(recs))
	}
	origin := newIdemOrigin(t)
	px, _ := degradedProxy(t, Options{}, PoolSpec{}, origin.addr(),
		RouteSpec{Name: "checkout", PathPrefix: "/checkout", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionCapture})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := j.StartReplay(ctx, px.s.Sender(), capture.ReplayOptions{Ready: px.s.PoolReady})
	defer stop()
	waitUntil(t, "the old journal replayed", func() bool { return j.Stats().Backlog["p"] == 0 })

	want := map[string]string{
		"/checkout?cart=7":  "client-key-1",
		"/checkout?cart=8":  "", // no key: the capture id
		"/checkout?cart=9":  "\"8e03978e:40d5; x=\\\"y\\\"\"",
		"/checkout?cart=10": strings.Repeat("k", 2000),
	}
	for _, r := range recs {
		head := origin.head(r.Target)
		key := want[r.Target]
		if key == "" {
			key = r.ID
		}
		if got := fieldValues(head, "Idempotency-Key"); len(got) != 1 || got[0] != key {
			t.Errorf("%s: Idempotency-Key %.60q, want %.60q", r.Target, got, key)
		}
		if got := fieldValues(head, "Floodgate-Capture-Id"); len(got) != 1 || got[0] != r.ID {
			t.Errorf("%s: Floodgate-Capture-Id %q, want [%s]", r.Target, got, r.ID)
		}
		if !strings.Contains(head, "Host: shop.example\r\n") {
			t.Errorf("%s: the stored header was not replayed:\n%s", r.Target, head)
		}
	}
}

// FuzzReplayHead: whatever header block a record holds, the head replay builds
// either fails to parse or validate (the record is then retried and
// dead-lettered, never sent) or carries exactly one Floodgate-Capture-Id, the
// record's, and a non-empty Idempotency-Key: the client's, else the capture
// id. A stored header cannot forge the capture id or smuggle a second request.
func FuzzReplayHead(f *testing.F) {
	f.Add([]byte("Host: x\r\nIdempotency-Key: K\r\n"))
	f.Add([]byte("Host: x\r\n"))
	f.Add([]byte("Host: x\r\nidempotency-key:\r\nFloodgate-Capture-Id: forged\r\n"))
	f.Add([]byte("Host: x\r\nIdempotency-Key: a\rb\r\n\r\nGET /smuggled HTTP/1.1\r\n"))
	f.Add([]byte("Host: x\nIdempotency-Key : K\n\nX: y"))
	const id = "0123456789abcdefghijk"
	f.Fuzz(func(t *testing.T, header []byte) {
		if len(header) > 1<<14 {
			return
		}
		raw := replayHead(&capture.Record{ID: id, Method: "POST", Target: "/o", Header: header})
		raw.WriteString("Content-Length: 0\r\n\r\n")
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		req.Header.DisableNormalizing()
		br := bufio.NewReaderSize(raw, raw.Len()+1)
		if err := req.Read(br); err != nil {
			return
		}
		if _, err := httpwire.ValidateHeaders(req.Header.RawHeaders(), true); err != nil {
			return
		}
		var capIDs, keys [][]byte
		for it := httpwire.Fields(req.Header.RawHeaders()); ; {
			k, v, ok := it.Next()
			if !ok {
				break
			}
			switch {
			case httpwire.EqualFoldBytes(k, []byte("floodgate-capture-id")):
				capIDs = append(capIDs, v)
			case httpwire.EqualFoldBytes(k, []byte("idempotency-key")):
				keys = append(keys, v)
			}
		}
		if len(capIDs) != 1 || string(capIDs[0]) != id {
			t.Fatalf("Floodgate-Capture-Id %q, want exactly [%s]", capIDs, id)
		}
		if len(keys) == 0 || len(bytes.TrimSpace(keys[0])) == 0 {
			t.Fatalf("Idempotency-Key %q: want a non-empty key", keys)
		}
		if n := br.Buffered() + raw.Len(); n != 0 {
			t.Fatalf("%d bytes left after the request: a second request was smuggled", n)
		}
	})
}
