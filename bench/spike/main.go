// Command spike is the measuring instrument of the degraded-mode and order-capture
// issues: a reproducible TV-shaped traffic spike, played against an origin of fixed
// capacity through any HTTP proxy, reported the same way for every proxy so that
// floodgate, HAProxy and nginx can be set side by side. bench/spike.sh runs it
// through all three in one go; this comment is the reference for the model, the
// profile and the figures.
//
// # Subcommands
//
//	spike origin   [-listen 127.0.0.1:17150] [-control 127.0.0.1:17151] [model flags]
//	spike run      -target HOST:PORT -name NAME [-origin-control HOST:PORT] [-metrics URL] [-scale F] [-json FILE]
//	spike report   FILE.json...
//	spike capacity [-origin HOST:PORT] [-conc N] [-d DURATION]
//	spike skip     -name NAME -reason TEXT -json FILE
//	spike quiet    [-max-wait 10m] [-busy 10]
//	spike disturbed FILE.json
//
// origin serves the shop; run plays the profile against a proxy in front of it,
// waits for replayed orders, and writes the report; report prints several runs side
// by side; capacity drives the origin directly with a closed loop of N clients to
// check that this machine delivers the nominal capacity; skip writes the report of
// a proxy that could not run, so that it still gets its row; quiet waits until the
// machine is idle (it is shared: another benchmark beside a run changes its figures,
// so each run also reports how busy the CPUs were and who used them); disturbed
// exits 1 when a report shows that something else used the CPUs during the load.
//
// # The origin
//
// A shop application server with a fixed capacity: -slots concurrent service slots
// (default 16) and a service time per request class:
//
//	class       path                    share  service  cacheable
//	static      GET /static/app-N.css    40%    2 ms    public, max-age=300
//	product     GET /product/N           25%    8 ms    public, max-age=10
//	search      GET /search?q=termN      20%   20 ms    public, max-age=30
//	checkout    POST /checkout           10%   30 ms    no-store
//	backoffice  GET /admin/orders?page=N  5%   10 ms    private, no-store
//
// The mix's mean service time is 10.3 ms, so 16 slots make a nominal capacity of
// 16 / 10.3 ms = 1,553 req/s. Service is a sleep, not CPU, so the figure holds on a
// loaded machine (spike capacity measures it: about 99% of nominal here).
//
// Requests beyond the slots wait in the origin's own accept queue, first come first
// served, and the origin degrades under overload the way an application server does:
//
//   - the accept queue holds at most -backlog requests (default 4096, about 2.6 s of
//     capacity); a request arriving when it is full is refused at once with 503, as a
//     server whose listen backlog is full resets the connection;
//   - a request that waited -queue-timeout (default 5 s) for a slot gets 503 without
//     being served;
//   - a deep queue slows everything down: service time grows linearly with the number
//     of requests waiting, by -backlog-penalty (default 15%) when the queue is full.
//     It stands for the memory, garbage-collection, scheduler and connection-handling
//     cost of thousands of parked requests, and is the one calibrated constant of the
//     model (see Calibration);
//   - the origin never notices that a client went away: a request it has started is
//     served to the end, as PHP-FPM, Unicorn or a servlet container would.
//
// Every answer carries X-Spike-Origin: CLASS, so the load generator can tell an
// answer of the origin from one made by the proxy or its cache.
//
// Checkout bodies carry {"order_id": "..."} and the request an Idempotency-Key.
// The origin honours the key (a second POST with a key it has seen is answered 200
// but not recorded again, and counted as a repeated key) and records each order by
// its order id, so that an order delivered twice under two different keys (a replay
// that rewrote the key) is counted as a duplicate too. /healthz answers at once,
// outside the slots.
//
// The control listener (-control, never behind the proxy) serves GET /stats (model
// and counters, JSON), GET /orders (recorded order ids, one a line) and POST /reset.
//
// # The profile
//
// Open loop: requests are sent at their scheduled times whatever the latency, each
// in its own goroutine (bounded by -max-inflight, far above what a run needs; a
// request that would exceed it is counted as a generator overflow and makes the run
// suspect). Arrivals are a Poisson process whose rate follows the TV case scaled to
// one 2-core machine: 300 req/s for 10 s, rising linearly to 5,400 req/s (18x) over
// 20 s, held 60 s, back down over 20 s, then 30 s at 300 req/s: 140 s and about
// 450,000 requests, 3.5 times the origin's capacity on the plateau. -scale multiplies
// every duration (-scale 0.25 is a 35 s run), -rate-scale every rate; -seed fixes the
// arrival times, classes and URLs, so two runs offer the same requests.
//
// Each class picks its URL from a Zipf distribution over a fixed set (300 assets,
// 5,000 products, 1,000 search terms, 50 back-office pages), so a cache has
// something realistic to work with. Checkout POSTs carry a unique order id and an
// Idempotency-Key. Back-office requests come from -backoffice-ip (default 127.0.0.2),
// so a proxy's allow_cidrs can tell them apart. The client times out after -timeout
// (default 10 s, overridable per class with -class-timeout search=3s,...); a request
// without an answer by then counts as "no answer". Connections are kept alive.
//
// # What is reported
//
// Each answer is classified, in this order:
//
//	captured  202 with a Floodgate-Capture-Id header (an order the proxy journaled)
//	degraded  2xx with X-Floodgate-Degraded, or with a Cache-Status saying the answer
//	          is stale or degraded (detail=...stale..., detail=degraded, ttl=-N), or a
//	          2xx the origin did not make
//	cached    2xx from the proxy's cache, fresh (Cache-Status hit or collapsed)
//	served    2xx made by the origin for this request (the goodput)
//	shed      503 or 429 with Retry-After, made by the proxy
//	origin-err  non-2xx made by the origin (its queue full or timed out)
//	proxy-err   any other non-2xx made by the proxy (502, 504, 403, ...)
//	conn-err    connection refused, reset or closed without an answer
//	no answer   client timeout
//
// Per proxy:
//
//   - origin goodput on the plateau, as a percentage of capacity: the service time
//     the origin spent on requests whose 2xx reached the client in time, divided by
//     slots x plateau length. It is weighted by work, so it stays meaningful when a
//     proxy changes the mix (shedding 20 ms searches, caching 2 ms assets); for a
//     proxy that passes the mix through it equals served req/s over nominal req/s,
//     which is also shown;
//   - answers per second on the plateau by kind: served, cached, degraded, captured,
//     shed, errors, no answer;
//   - per class: ok% (served or cached), answered% (plus degraded and captured),
//     and p50/p99 latency of the requests the origin served (latency counts from the
//     scheduled send time, so a late generator cannot hide queueing);
//   - orders: submitted, answered 2xx by the origin, captured (202), failed, no
//     answer; after the load ends the run polls the origin for up to -replay-wait
//     until the count of distinct orders stops growing (so that a proxy that replays
//     captured orders later gets credit), then counts orders that reached the origin,
//     confirmed orders (2xx or 202) that had not (lost, or late when replay was still
//     delivering when the wait ended: the rate and the time the rest would take are
//     shown), orders the origin recorded without the client being told (no
//     confirmation), and duplicates at the origin;
//   - degraded-mode transitions, the increase of floodgate_degrade_transitions_total
//     on -metrics during the run, when given and reachable;
//   - the generator's own health: send lag p99 and max, overflow.
//
// The report is printed as a table and written with -json, including a per-second
// timeline; spike report prints several of them side by side.
//
// # Calibration
//
// The issue that asked for this instrument says HAProxy and nginx deliver about 87%
// of origin capacity in a TV-shaped spike, checkout fails for more than half of the
// buyers and search fails entirely. Measured with the defaults above on the 2-core
// machine (full length, undisturbed runs):
//
//   - nginx forwards everything: the origin's accept queue fills (4,096 waiting),
//     the requests beyond it get the origin's immediate 503, those served have
//     waited about 3 s, and the 15% backlog penalty sets goodput at 87.0% of
//     capacity. That figure is the calibration, by construction: -backlog-penalty
//     0.15 was chosen for it;
//   - HAProxy with maxconn = slots keeps the origin's queue empty, so the penalty
//     never applies: it delivers about 93% of capacity (92-94% over quiet full
//     runs), the loss being the turnaround between a response and the next request
//     on a slot (0.4-0.7 ms on loopback across processes here), not overload. The
//     issue's 87% for HAProxy needs a maxconn above the origin's slots (then it
//     behaves like nginx) and is not reproduced with a competent config;
//   - both admit first come, first served, so the two thirds of the plateau that
//     cannot be served fail evenly across classes: checkout fails for about two
//     thirds of the buyers (65-68% over the whole run), search and the back office
//     as much. Search does not fail entirely in this model unless its clients are
//     given less patience than the queue's wait (-class-timeout search=2s), which is
//     left as a flag rather than a default.
//
// Two artefacts of simulating a server with sleeps are corrected so that they do not
// favour one proxy: a slot's next request starts when the previous one ideally ended,
// and the origin wakes up on time (see Origin.sleepUntil); spike capacity shows 99.4%
// of nominal with a standing queue.
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
  spike origin   [-listen ADDR] [-control ADDR] [-slots N] [-service LIST] [-backlog N] [-queue-timeout D] [-backlog-penalty F]
  spike run      -target HOST:PORT -name NAME [-origin-control ADDR] [-metrics URL] [-scale F] [-rate-scale F] [-json FILE]
  spike report   FILE.json...
  spike capacity [-origin ADDR] [-control ADDR] [-conc N] [-d DURATION]
  spike skip     -name NAME -reason TEXT -json FILE
  spike quiet    [-max-wait D] [-busy PCT]
  spike disturbed FILE.json
Run "spike SUBCOMMAND -h" for its flags; "go doc ./bench/spike" for the model.
`)
}
