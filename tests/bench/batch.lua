-- batch.lua - wrk: POST NDJSON batches of 1000 unique ~400-byte events.
package.path = package.path .. ";tests/bench/?.lua"
local common = require("common")
local threads_seen = 0
local counter = 0
local template

function setup(thread)
  threads_seen = threads_seen + 1
  thread:set("tid", threads_seen)
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  run = string.format("%d%06d", os.time(), math.random(0, 999999))
  local lines = {}
  for i = 1, 1000 do
    lines[i] = common.event:gsub("@ID@", "@B@-" .. i)
  end
  template = table.concat(lines, "\n") .. "\n"
end

function request()
  counter = counter + 1
  local body = template:gsub("@B@", "b" .. run .. "-" .. tid .. "-" .. counter)
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/x-ndjson"}, body)
end

-- tid and run are globals: thread:set() in setup() writes the thread's globals.
local bad = 0
function response(status, headers, body)
  if status ~= 200 or not body:find('"accepted":1000,', 1, true) then
    bad = bad + 1
    if bad < 3 then io.stderr:write("unexpected response " .. status .. ": " .. body:sub(1, 200) .. "\n") end
  end
end
