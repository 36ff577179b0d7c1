#!/usr/bin/env bash
# run-all.sh - `make test`: unit suites, the same suites under ASan+UBSan,
# then the integration tests; ends with one summary line.
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()

# Check prints "100%: Checks: N, Failures: F, Errors: E".
run_check() {
  local name=$1; shift
  echo "=== $name"
  local out rc
  out=$("$@" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -vE '^[^:]+:[0-9]+:P:' | tail -n 40
  local line n f e
  line=$(printf '%s\n' "$out" | grep -E 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no Check summary (crashed?), exit $rc"
    failed=$((failed + 1)); failures+=("$name"); return
  fi
  n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
  e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + n - f - e)); failed=$((failed + f + e))
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$e" -ne 0 ]; then failures+=("$name"); fi
}

run_check "unit" env CK_FORK=yes build/rel/tt_unit
run_check "unit (ASan+UBSan)" env CK_FORK=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 build/asan/tt_unit

echo "=== integration"
out_file=$(mktemp)
tests/integration/run.sh 2>&1 | tee "$out_file"
line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$out_file" | tail -n 1)
rm -f "$out_file"
if [ -z "$line" ]; then
  echo "integration: no summary line (driver crashed?)"
  failed=$((failed + 1)); failures+=("integration")
else
  p=$(sed -E 's/^integration: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || failures+=("integration")
fi

echo
[ ${#failures[@]} -eq 0 ] || echo "failed groups: ${failures[*]}"
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
