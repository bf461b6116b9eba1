// Package capture owns the order capture journal of degraded mode: the durable
// record of requests that floodgate answered 202 "order received" while their
// pool was saturated, and their replay to the pool once it recovers.
//
// It owns, and nothing else in floodgate touches:
//   - the journal directory: append-only segment files (seg-NNNNNNNN.log), each
//     record framed with its length, a CRC32C and a type, written with group
//     commit (concurrent appends share one fsync), recovered on Open (a torn tail
//     is truncated, corruption anywhere else refuses to open), and deleted or
//     compacted once every record in them is resolved;
//   - the state rebuilt from those files: pending records per pool in capture
//     order, delivered records, dead letters and the idempotency-key index;
//   - replay: per pool, up to Concurrency sends at once, started in capture
//     order at a bounded rate when the pool is ready, with the client's
//     Idempotency-Key (the capture id when it sent none) and the capture id in
//     Floodgate-Capture-Id, retrying with backoff and dead-lettering what the
//     backend refuses.
//
// The guarantee (docs/order-capture.md): a record for which Append returned an
// id without error is on disk before Append returns, survives kill -9 and
// power loss, and is handed to the Sender until a backend answers 2xx or it is
// dead-lettered; delivery is at least once, so a backend that honours the
// Idempotency-Key records it exactly once.
//
// The package knows nothing about HTTP servers, configuration files or routes
// beyond the names it is given: it must not import proxy, conf or cmd. The proxy
// turns a request into a Record and a Sender into a backend request; cmd turns
// the capture config into Options and ReplayOptions.
package capture
