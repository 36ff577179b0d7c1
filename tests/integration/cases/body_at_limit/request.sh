# Exactly 2048 bytes: an event, padding spaces, and the final newline.
ev='{"specversion":"1.0","id":"edge","source":"as","type":"token.revoked","time":"2026-11-22T07:00:00Z","data":{"token_id":"t"}}'
printf '%s' "$ev"
head -c $((2048 - ${#ev} - 1)) /dev/zero | tr '\0' ' '
printf '\n'
