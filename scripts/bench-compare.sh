#!/usr/bin/env bash
# bench-compare.sh — relay beside the Watermill peer and the minimal build:
# runs ../shared/peers/compare.sh (never a copy of it) from the project root,
# measures the machine's steal time over the run, and records the table in
# docs/BENCHMARKS.md between the compare:begin and compare:end markers (and
# in bench/results/compare-<timestamp>.txt).
#
#   scripts/bench-compare.sh                 # ROUNDS=3 N=20000 C=128 FAIL=0.2 (compare.sh's defaults)
#   PEERS=/elsewhere/peers scripts/bench-compare.sh
#
# Without the peers (a clone on its own) it says so and exits 0: the rest of
# make bench does not depend on them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PEERS=${PEERS:-../shared/peers}
if [ ! -x "$PEERS/compare.sh" ]; then
	echo "bench-compare: $PEERS/compare.sh not found: comparison with the peers skipped (they live beside the project, in ../shared/peers; set PEERS to point elsewhere)"
	exit 0
fi

# cpu line of /proc/stat: user nice system idle iowait irq softirq steal
stat() { awk '/^cpu /{t=0; for (i=2; i<=9; i++) t+=$i; print t, $9}' /proc/stat; }
read -r total0 steal0 < <(stat)
started=$(date -u +%Y-%m-%dT%H:%MZ)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
out=bench/results/compare-$stamp.txt

"$PEERS/compare.sh" | tee "$out"

read -r total1 steal1 < <(stat)
cpus=$(nproc)
steal=$(awk -v s=$((steal1 - steal0)) -v t=$((total1 - total0)) -v n="$cpus" \
	'BEGIN { if (t > 0) printf "%.2f cores (%.1f %% of the machine)", n*s/t, 100*s/t; else print "unknown" }')
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
echo "steal over the run: $steal" | tee -a "$out"

# Replace what is between the markers with this run's table.
python3 - "$out" "$started" "$commit" "$cpus" "$steal" "${ROUNDS:-3}" "${N:-20000}" "${C:-128}" "${FAIL:-0.2}" <<'PY'
import re, sys
out, started, commit, cpus, steal, rounds, n, c, fail = sys.argv[1:]
table = open(out).read().rstrip("\n")
block = (f"<!-- compare:begin (written by scripts/bench-compare.sh, make bench) -->\n"
         f"{started}, `{commit}`, {cpus} CPUs, ROUNDS={rounds} N={n} C={c} FAIL={fail}; "
         f"hypervisor steal over the run: {steal}.\n\n```\n{table}\n```\n<!-- compare:end -->")
path = "docs/BENCHMARKS.md"
doc = open(path).read()
pat = re.compile(r"<!-- compare:begin.*?<!-- compare:end -->", re.S)
if not pat.search(doc):
    sys.exit(f"bench-compare: no compare markers in {path}; table left in {out}")
open(path, "w").write(pat.sub(lambda _: block, doc, count=1))
print(f"recorded in {path}")
PY
