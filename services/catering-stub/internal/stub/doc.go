// Package stub is a small, in-memory Catering backend for demos, end-to-end
// tests and benchmarks.
//
// POST /catering answers like the real backend ({"success":true}) and records
// what arrived, one record per Idempotency-Key, so a test can assert that
// every message was delivered exactly once from the backend's point of view
// even when the relay delivered it more than once. A Mode injects failures
// (random or forced statuses, added latency, dropped connections) and can be
// changed at run time through /admin/mode. Given the signing secret, it
// checks every delivery's Standard Webhooks signature first, as a real
// backend would (package webhook), and answers 401 with the reason to a
// missing, wrong or stale one.
//
// Routes:
//
//	POST   /catering         record a delivery (subject to the Mode and the signature check)
//	GET    /received         {"count","deliveries","failed","unauthorized"(if any),"items"}; ?key=K for one record
//	DELETE /received         forget everything
//	GET    /admin/mode       the current Mode
//	PUT    /admin/mode       change the fields present in the body
//	GET    /healthz          {"status":"ok"}
package stub
