// Command bulkgen writes a synthetic NDJSON export for the bulk seal benchmark (make
// bench-bulk): bulkgen -size 1GiB -out FILE. See package bulkgen.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rkms/rkms/internal/testing/bulkgen"
)

func main() {
	size := flag.String("size", "1GiB", "at least this many bytes (suffixes KiB, MiB, GiB)")
	out := flag.String("out", "", "output file (default: standard output)")
	seed := flag.Uint64("seed", 1, "random seed (the output is a function of seed and size)")
	configDir := flag.String("config", "", "instead: print an rkms configuration with the records' policy (\"bulk\") and an embedded keyring in this directory")
	flag.Parse()
	if *configDir != "" {
		fmt.Printf("data_dir: %[1]s/data\nadmin: {token_file: %[1]s/data/admin.token}\nstore: {type: embedded, embedded: {path: %[1]s/data/keys.db}}\n%[2]s", *configDir, bulkgen.Policy)
		return
	}
	n, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkgen:", err)
		os.Exit(2)
	}
	w := os.Stdout
	if *out != "" {
		if w, err = os.Create(*out); err != nil {
			fmt.Fprintln(os.Stderr, "bulkgen:", err)
			os.Exit(1)
		}
	}
	records, written, err := bulkgen.Write(w, n, *seed)
	if err == nil && *out != "" {
		err = w.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkgen:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bulkgen: %d records, %d bytes\n", records, written)
}

// parseSize reads 123, 10KiB, 64MiB or 1GiB.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("-size: %q is not a positive size (123, 10KiB, 64MiB, 1GiB)", s)
	}
	return n * mult, nil
}
