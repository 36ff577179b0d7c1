# The counter is of bytes after decompression: the request file's size.
assert_eq "$(tt_metric tokentrail_ingest_body_bytes_total)" "$(wc -c <"$CASE_DIR/request" | tr -d ' ')" "body bytes counted after gunzip"
