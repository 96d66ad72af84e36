#!/usr/bin/env bash
# make bench-bulk: rkms seal -j over a generated NDJSON export against jq -c . on the same file,
# in the same run. Prints the machine, the file, each tool's time and MB/s, the ratio and
# rkms's peak RSS, and fails when rkms is under 2x the throughput of jq or over 100 MB of RSS.
# Usage: bench-bulk.sh [SIZE] (default 1GiB; 64MiB, 10GiB...). BULK_DIR=dir keeps the files there.
set -euo pipefail
size=${1:-1GiB}
jobs=${BULK_JOBS:-$(nproc)}
dir=${BULK_DIR:-$(mktemp -d)}
[ -n "${BULK_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
jq=${JQ:-/usr/bin/jq}
go build -o "$dir/rkms" ./cmd/rkms
go build -o "$dir/bulkgen" ./internal/testing/bulkgen/cmd/bulkgen
"$dir/bulkgen" -config "$dir" > "$dir/rkms.yaml"
in="$dir/export.ndjson"
[ -s "$in" ] || "$dir/bulkgen" -size "$size" -out "$in"
bytes=$(stat -c %s "$in")
records=$(wc -l < "$in")
# Create the tenants' keys first, and warm the page cache: neither is what is measured.
head -n 1000 "$in" | "$dir/rkms" seal --config "$dir/rkms.yaml" --policy bulk --format ndjson --no-progress > /dev/null 2> "$dir/warm.log"
cat "$in" > /dev/null

# measure NAME CMD...: sets secs and rss_kb (peak resident set of the command).
measure() {
  local name=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%e %M' -o "$dir/$name.time" "$@"
    read -r secs rss_kb < "$dir/$name.time"
  else # no GNU time: elapsed from bash, peak RSS from the kernel's high-water mark
    local start end pid hwm=0 v
    start=$(date +%s.%N)
    "$@" & pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$v" ] && hwm=$v
      sleep 0.1
    done
    wait "$pid"
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l); rss_kb=$hwm
  fi
}

measure jq "$jq" -c . "$in" > /dev/null
jq_secs=$secs jq_rss=$rss_kb
measure rkms "$dir/rkms" seal --config "$dir/rkms.yaml" --policy bulk --format ndjson -j "$jobs" --no-progress --in "$in" --out /dev/null --summary-json "$dir/summary.json" 2> "$dir/rkms.log"
rkms_secs=$secs rkms_rss=$rss_kb
grep -q '"failed": 0' "$dir/summary.json" || { cat "$dir/rkms.log"; echo "bench-bulk: rkms seal failed records"; exit 1; }

awk -v b="$bytes" -v r="$records" -v js="$jq_secs" -v rs="$rkms_secs" -v jr="$jq_rss" -v rr="$rkms_rss" \
    -v cpu="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" -v n="$(nproc)" -v j="$jobs" \
    -v load="$(cut -d' ' -f1-3 /proc/loadavg)" -v go="$(go env GOVERSION)" -v jqv="$("$jq" --version)" 'BEGIN {
  printf "machine      %s, %d CPUs, load %s, %s, %s\n", cpu, n, load, go, jqv
  printf "file         %.0f bytes (%.2f GiB), %d records, 4 tagged fields each\n", b, b/2^30, r
  printf "jq -c .      %7.2f s  %7.1f MB/s  peak RSS %6.1f MB\n", js, b/1e6/js, jr/1024
  printf "rkms seal    %7.2f s  %7.1f MB/s  peak RSS %6.1f MB  (-j %d)\n", rs, b/1e6/rs, rr/1024, j
  printf "ratio        %.2fx the throughput of jq (target >= 2x); RSS %.1f MB (target < 100 MB)\n", js/rs, rr/1024
  ok = (js/rs >= 2 && rr/1024 < 100)
  print (ok ? "bench-bulk: PASS" : "bench-bulk: FAIL")
  exit !ok
}'
