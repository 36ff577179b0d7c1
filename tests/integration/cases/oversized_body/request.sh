# 3000 bytes: one well-formed event padded with spaces, over the 2 KiB limit.
printf '{"specversion":"1.0","id":"big","source":"as","type":"token.revoked","time":"2026-11-22T07:00:00Z","data":{"token_id":"t"}}'
head -c 2880 /dev/zero | tr '\0' ' '
