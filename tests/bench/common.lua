-- common.lua - shared by the wrk scripts: a ~400-byte token.used event with
-- a unique id per request (thread id + counter), and response checking.
local M = {}

M.event = '{"specversion":"1.0","id":"@ID@","source":"//rs/orders-api","type":"token.used",' ..
  '"time":"2026-11-22T07:47:51.123Z","subject":"alice@example.com","data":{' ..
  '"token_id":"sha256:0c4d9ad3f2b1c6e8a7d5b3f1e9c7a5b3d1f0e8c6a4b2d0f9e7c5a3b1d9f7e5c3",' ..
  '"client_id":"oncall-cli","subject":"alice@example.com","scopes":"db:orders:read db:orders:write",' ..
  '"audience":"https://orders.example.com","incident_id":"INC-2041","resource":"orders-api",' ..
  '"method":"GET","path":"/v1/orders/12345/items?limit=50","status":200,"ip":"10.20.30.40"}}'

return M
