// Command spike is the measuring instrument of the degraded-mode and order-capture
// issues (7, 8 and 15): a reproducible TV-shaped traffic spike, played against an
// origin fleet of fixed capacity through any HTTP proxy, reported the same way for
// every proxy so that floodgate, HAProxy and nginx can be set side by side.
// bench/spike.sh runs it through all three in one go; this comment is the
// reference for the model, the profile and the figures.
//
// # Subcommands
//
//	spike origin   [-shop ADDR=SLOTS,...] [-backoffice ADDR=SLOTS] [-control 127.0.0.1:17154] [model flags]
//	spike run      -target HOST:PORT -name NAME [-origin-control HOST:PORT] [-metrics URL] [-scale F] [-recovery D] [-json FILE]
//	spike report   FILE.json...
//	spike capacity [-control HOST:PORT] [-conc N] [-d DURATION]
//	spike skip     -name NAME -reason TEXT -json FILE
//	spike quiet    [-max-wait 10m] [-busy 10]
//	spike disturbed FILE.json
//
// origin serves the shop; run plays the profile against a proxy in front of it,
// waits for replayed orders, and writes the report; report prints several runs side
// by side; capacity drives the shop's backends directly with closed loops (-conc
// clients per slot) to check that this machine delivers the nominal capacity; skip
// writes the report of a proxy that could not run, so that it still gets its row;
// quiet waits until the machine is idle (it is shared: another benchmark beside a
// run changes its figures, so each run also reports how busy the CPUs were and who
// used them); disturbed exits 1 when a report shows that something else used the
// CPUs during the load.
//
// # The origin
//
// A shop application on an unequal fleet: -shop names its backends, each its own
// listener with its own service slots (default three, of 8, 6 and 2 slots: 16 in
// all, as an autoscaling group mixing instance sizes), and -backoffice the back
// office's own server (default 8 slots). Every backend serves every path; the
// proxy decides which gets what. Service time per request class:
//
//	class       path                     share  service  Cache-Control
//	static      GET /img/app-N.png        40%    2 ms    public, max-age=300
//	page        GET /product/N            35%    6 ms    public, max-age=10
//	search      GET /search?q=termN       15%   20 ms    no-store
//	order       POST /checkout             5%   60 ms    no-store
//	backoffice  GET /admin/orders?page=N   5%   10 ms    private, no-store
//
// An order is ten times dearer than a page view. The shop's part of the mix
// (everything but the back office) has a mean service time of 9.37 ms, so the 16
// shop slots make a nominal capacity of 1,708 req/s with nothing cached. Service is
// a sleep, not CPU, so the figure holds on a loaded machine.
//
// Requests beyond a backend's slots wait in its own accept queue, first come first
// served, and the backend degrades under overload the way an application server
// does:
//
//   - the accept queue holds at most -backlog requests per slot (default 256); a
//     request arriving when it is full is refused at once with 503, as a server
//     whose listen backlog is full resets the connection;
//   - a request that waited -queue-timeout (default 5 s) for a slot gets 503 without
//     being served;
//   - a deep queue slows everything down: service time grows linearly with the number
//     of requests waiting, by -backlog-penalty (default 15%) when the queue is full
//     (the memory, garbage-collection and scheduler cost of thousands of parked
//     requests; calibrated in issue 7 so that nginx forwarding everything to one
//     16-slot origin delivered 87% of its capacity);
//   - the origin never notices that a client went away: a request it has started is
//     served to the end, as PHP-FPM, Unicorn or a servlet container would.
//
// Every answer carries X-Spike-Origin: CLASS and X-Spike-Backend: NAME, and echoes
// the request's X-Spike-Req, so the load generator can tell an answer of the
// origin from one made by the proxy, and one made for this request from a stored
// one (a cache answers with another request's id).
//
// Orders: the body carries {"order_id": "..."} and the request an Idempotency-Key.
// The fleet shares one order database, which deduplicates by the client's key as
// the IETF draft means it: a POST whose key was already processed is answered 200
// and not processed again (a "repeated key"). An order id processed twice (under
// two keys: a proxy that rewrote the key on replay) is an order processed twice.
// The database remembers when each order was first processed and whether that
// request carried Floodgate-Capture-Id (a proxy's replay). /healthz answers at
// once, outside the slots.
//
// The control listener (-control, never behind the proxy) serves GET /stats (model,
// counters per class and per backend, JSON), GET /orders (one order a line: id,
// first processed in Unix milliseconds, 1 if from a replay) and POST /reset.
//
// # The profile
//
// Open loop: requests are sent at their scheduled times whatever the latency, each
// in its own goroutine (bounded by -max-inflight, far above what a run needs; a
// request that would exceed it is counted as a generator overflow and makes the run
// suspect). Arrivals are a Poisson process whose rate follows the TV case scaled to
// one 2-core machine: 300 req/s for 10 s, rising linearly to 5,400 req/s (18x) over
// 20 s, held 60 s, back down over 20 s, then the recovery: steady traffic at 300
// req/s (about 20% of the shop's uncached capacity) for 150 s, long enough to see a
// proxy leave its degraded mode and replay what it captured while traffic goes on.
// -scale multiplies every duration but the recovery's when -recovery is given
// (spike.sh always gives it), -rate-scale every rate; -seed fixes the arrival
// times, classes and URLs, so two runs offer the same requests.
//
// Each class picks its URL from a Zipf distribution over a fixed set (300 assets,
// 5,000 pages, 1,000 search terms, 50 back-office pages), so a cache has something
// realistic to work with. Each order has a unique order id and Idempotency-Key;
// -retry-share of them (default 3%) are sent again by their client 1.5 s later,
// same id, same key (a double submit, or a retry after a slow answer), for the
// origin's deduplication to absorb. Public traffic comes from -users loopback
// addresses (default 1,000, 127.1.0.1 and up), so that a proxy's per-address rate
// limits see visitors rather than one client; the back office comes from
// -backoffice-ip (default 127.0.0.2), so that allow lists can tell it apart. The
// client times out after -timeout (default 10 s, overridable per class with
// -class-timeout search=3s,...); a request without an answer by then counts as "no
// answer" (a client timeout). Connections are kept alive.
//
// With -metrics (floodgate's /metrics), the run reads floodgate_degraded every
// 500 ms through the load and the replay wait: when the proxy entered and left
// degraded mode, and how often.
//
// # What is reported
//
// Each answer is classified, in this order:
//
//	captured  202 with a Floodgate-Capture-Id header (an order the proxy journaled)
//	degraded  2xx with X-Floodgate-Degraded, or with a Cache-Status saying the answer
//	          is stale or degraded (detail=...stale..., detail=degraded, ttl=-N), or a
//	          2xx the origin did not make
//	cached    2xx from the proxy's cache, fresh (Cache-Status hit or collapsed, or
//	          the origin's answer to another request)
//	served    2xx made by the origin for this request
//	shed      503 or 429 with Retry-After, made by the proxy
//	origin-err  non-2xx made by the origin (its queue full or timed out)
//	proxy-err   any other non-2xx made by the proxy (502, 504, 403, ...)
//	conn-err    connection refused, reset or closed without an answer
//	no answer   client timeout
//
// Per proxy, issue 15's figures first:
//
//   - at the peak (requests sent on the plateau): goodput, the share of the requests
//     sent that got a 2xx of any kind (served, cached, degraded, captured) within
//     the SLO (-slo, default 1 s), overall and per class; the p99 latency of the
//     requests the proxy admitted (answered by the origin, 2xx or not); client
//     timeouts;
//   - after the peak: degraded-mode entries and exits over the run, the last exit's
//     time after the end of the plateau and after the start of the steady traffic
//     (or "never"), goodput during the recovery and the requests refused after the
//     exit; the orders captured, when the last of them reached the origin after
//     the exit, against the budget (captured / -replay-rate + 30 s); orders
//     lost (confirmed by a 2xx or a 202 but never processed) and processed twice,
//     and the repeated keys the origin deduplicated;
//
// then the detail of issue 7:
//
//   - origin goodput on the plateau (by answer time), as a percentage of the shop's
//     capacity: the service time the shop spent on requests whose 2xx reached the
//     client, divided by slots x plateau length;
//   - answers per second on the plateau by kind; per class over the whole run ok%
//     (served or cached), answered% (plus degraded and captured), p50/p99 latency of
//     the requests the origin served (latency counts from the scheduled send time,
//     so a late generator cannot hide queueing);
//   - orders: submitted, retried, answered 2xx by the origin, captured (202),
//     failed, no answer; after the load ends the run polls the origin for up to
//     -replay-wait until every confirmed order is there or the count stops growing,
//     then counts orders that reached the origin, confirmed orders that had not
//     (lost, or late when replay was still delivering when the wait ended: the rate
//     and the time the rest would take are shown), orders processed without the
//     client being told (no confirmation), and duplicates;
//   - the origin per backend (served, refused, deepest queue, busy time), and the
//     replayed POSTs it saw;
//   - floodgate_degrade_transitions_total's increase, when -metrics is given;
//   - the generator's own health (send lag p99 and max, overflow) and the machine's
//     CPU use.
//
// The report is printed as a table and written with -json, including a per-second
// timeline (with the proxy's mode each second, when -metrics is given); spike
// report prints several of them side by side.
//
// # Fidelity
//
// Two artefacts of simulating a server with sleeps are corrected so that they do not
// favour one proxy: a slot's next request starts when the previous one ideally ended,
// and the origin wakes up on time (see Origin.sleepUntil); spike capacity shows
// about 99% of nominal with a standing queue. The figures of each version of the
// scenario, with the command that produced them, are in bench/RESULTS.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "origin":
		err = cmdOrigin(args[1:], stderr)
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "report":
		err = cmdReport(args[1:], stdout)
	case "capacity":
		err = cmdCapacity(args[1:], stdout, stderr)
	case "skip":
		err = cmdSkip(args[1:], stdout)
	case "quiet":
		err = cmdQuiet(args[1:], stderr)
	case "disturbed":
		if err = cmdDisturbed(args[1:], stdout); errors.Is(err, errDisturbed) {
			return 1
		}
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	default:
		usage(stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "spike %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  spike origin   [-shop ADDR=SLOTS,...] [-backoffice ADDR=SLOTS] [-control ADDR] [-service LIST] [-backlog N] [-queue-timeout D] [-backlog-penalty F]
  spike run      -target HOST:PORT -name NAME [-origin-control ADDR] [-metrics URL] [-scale F] [-recovery D] [-slo D] [-replay-rate N] [-json FILE]
  spike report   FILE.json...
  spike capacity [-control ADDR] [-conc N] [-d DURATION]
  spike skip     -name NAME -reason TEXT -json FILE
  spike quiet    [-max-wait D] [-busy PCT]
  spike disturbed FILE.json
Run "spike SUBCOMMAND -h" for its flags; "go doc ./bench/spike" for the model.
`)
}
