// Package testgrpc starts gRPC servers on loopback sockets for tests: real
// listeners and real HTTP/2, stopped when the test ends. It exists so that
// the many package tests that serve a store over gRPC share one copy of the
// listen, serve, stop and dial steps.
package testgrpc
