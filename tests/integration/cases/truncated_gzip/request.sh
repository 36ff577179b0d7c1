# A valid gzip stream of one event, cut short (no trailer).
ev='{"specversion":"1.0","id":"tg","source":"as","type":"token.revoked","time":"2026-11-22T07:00:00Z","data":{"token_id":"t"}}'
printf '%s\n' "$ev" | gzip -c -n | head -c 60
