assert_lt "$(wc -c <"$TT_TMP/request")" 200000 "compressed bomb size (test precondition)"
# The collector must not have inflated the bomb into memory.
rss=$(tt_rss_kib "$TT_PID")
note "collector RSS after the bomb: ${rss} KiB"
assert_lt "$rss" $((64 * 1024)) "collector RSS in KiB after the gzip bomb"
tt_get /healthz
assert_eq "$STATUS" 200 "/healthz after the gzip bomb"
