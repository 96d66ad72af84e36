// Command rkms-load measures the rkms ext_proc server against its limits on loopback, each
// figure beside a baseline measured in the same run. See internal/load and BENCHMARKS.md.
//
//	go run ./cmd/rkms-load -duration 10s
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rkms/rkms/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := load.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rkms-load:", err)
		os.Exit(1)
	}
}
