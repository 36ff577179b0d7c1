# The fingerprint in expect.events is sha256 of the raw token: recompute it here.
fp=$(tt_fingerprint 'tt-raw-Norm-0001')
assert_eq "$(tt_events --type token.issued | jq -r .data.token_id)" "$fp" "token_id of the raw token"
assert_eq "$(tt_events --token "$fp" | grep -c .)" 3 "events found by the fingerprint"
assert_eq "$(grep -ac 'tt-raw-Norm-0001' "$TT_DB" "$TT_DB-wal" 2>/dev/null | awk -F: '{s+=$NF} END {print s+0}')" 0 "raw token bytes in the database files"
# Stored in canonical key order, not just equal as JSON.
assert_eq "$(tt_events --type token.issued | jq -r 'keys_unsorted | join(",")')" \
    "specversion,id,source,type,time,datacontenttype,aext,zzext,data" "canonical attribute order"
