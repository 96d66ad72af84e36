// Command rkms-load measures the rkms ext_proc server against its limits on loopback, each
// figure beside a baseline measured in the same run: directly over gRPC against a no-op ext_proc
// server, and through the real Envoy against Envoy without ext_proc and with a no-op ext_proc.
// See internal/testing/load for the method and BENCHMARKS.md for the figures.
//
//	make load                                  # 10 s per configuration, about 4-5 minutes in all
//	go run ./cmd/rkms-load -slow-trace /tmp/traces  # and Go execution traces of rkms's slow streams
//	go run ./cmd/rkms-load -duration 5s -skip-envoy -keys 1000 -cpuprofile rkms.prof
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/rkms/rkms/examples/app/recorder"
	"github.com/rkms/rkms/internal/testing/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := load.Main(ctx, os.Args[1:], func(n int) http.Handler { return recorder.NewBounded(n) }, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rkms-load:", err)
		os.Exit(1)
	}
}
