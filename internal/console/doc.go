// Package console owns the operator's web console: a few static
// HTML/CSS/JavaScript files embedded into the node binary with go:embed and
// served by the node's HTTP API server (GET / and the assets under /ui/).
//
// The page is a client of the HTTP/JSON API and of nothing else: every view
// (cluster overview, query, live tail, append, durable consumers) calls the
// same /v1 routes a script would, with the same bearer token, so the console
// can do no more than the token's role allows. Nothing is fetched from
// outside the node (no CDN, no build step, no Node toolchain); the Content
// Security Policy set here forbids it.
package console
