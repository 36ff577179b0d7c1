#!/usr/bin/env bash
# t_malformed_10k.sh - 10,000 malformed requests against the ASan+UBSan
# collector: every answer is 400/413/415 with a JSON body, the process stays
# up and healthy, memory stays bounded, and it exits 0 on SIGTERM (ASan or
# LSan would make the exit status 86, UBSan 87).
set -u
. "$(dirname "$0")/lib.sh"

TT_BIN=$(_tt_abs "${TT_ASAN_BIN:-build/asan/tokentrail}")
[ -x "$TT_BIN" ] || die "$TT_BIN missing: make build/asan/tokentrail"
# A small quarantine keeps RSS meaningful; it does not weaken leak detection.
export ASAN_OPTIONS=detect_leaks=1:exitcode=86:quarantine_size_mb=16:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=87

max_body=$((512 * 1024))
tt_start --max-body "$max_body" || exit 1

# Warm up (thread stacks, allocator pools) before taking the baseline RSS.
python3 "$TT_IDIR/malformed.py" "$TT_PORT" --count 200 --conns 4 --seed 7 --max-body "$max_body" >/dev/null
rss0=$(tt_rss_kib "$TT_PID")

seed=${TT_SEED:-$RANDOM}
out=$(python3 "$TT_IDIR/malformed.py" "$TT_PORT" --count 10000 --conns 4 --seed "$seed" --max-body "$max_body")
rc=$?
printf '%s\n' "$out"
assert_eq "$rc" 0 "malformed.py (every answer 400/413/415 with a JSON body; seed $seed)"
assert_contains "$out" "wrong answers: 0" "malformed.py summary"

pass
_tt_alive "$TT_PID" || fail "the collector died under malformed input"
rss1=$(tt_rss_kib "$TT_PID")
note "RSS before ${rss0} KiB, after ${rss1} KiB, growth $(( (rss1 - rss0) / 1024 )) MiB"
assert_le "$((rss1 - rss0))" $((64 * 1024)) "RSS growth in KiB over 10,000 malformed requests"

tt_get /healthz
assert_eq "$STATUS" 200 "/healthz after the barrage"
tt_get /readyz
assert_eq "$STATUS" 200 "/readyz after the barrage"
# Nothing was valid, so nothing may have been stored.
assert_eq "$(tt_metric tokentrail_store_commits_total)" 0 "store commits"
# A good event still goes through.
tt_ev_issued after-barrage >"$TT_TMP/ok"
tt_post "$TT_TMP/ok"
assert_eq "$STATUS" 200 "a valid event after the barrage"

tt_stop
assert_eq "$TT_RC" 0 "exit status after SIGTERM (86 = ASan/LSan report, 87 = UBSan)"
pass
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TT_LOG"; then
    fail "sanitizer report in the collector log:"
    grep -E -A15 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TT_LOG" | head -40 >&2
fi
assert_eq "$(tt_events | jq -r .id)" after-barrage "the only stored event"
tt_done
