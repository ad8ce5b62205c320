//go:build tools

// Package tools pins the code generators and linters the Makefile runs, so
// `make proto` gives the same output on every machine.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
