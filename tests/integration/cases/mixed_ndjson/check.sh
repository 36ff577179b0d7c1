# The stray access_token's value must not be echoed anywhere in the answer.
assert_not_contains "$BODY" "at-SECRET-9f8e7d6c5b4a" "response body"
assert_not_contains "$BODY" "9f8e7d6c5b4a" "response body"
# ... nor written to the log or the database.
assert_eq "$(grep -ac 'at-SECRET-9f8e7d6c5b4a' "$TT_LOG")" 0 "log lines with the stray secret"
assert_eq "$(sqlite3 "$TT_DB" "SELECT count(*) FROM events WHERE body LIKE '%at-SECRET%'")" 0 "rows with the stray secret"
