-- The engine's side of bench/invoke.sh: each event is a file holding a
-- number N; the handler sends N InvokeEndpoint calls at once (a video's
-- chunks, say) and waits for all of them. The endpoint's max_in_flight
-- keeps what the server sees at its 64 slots.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "invoke-fanout",
  match = {},
  destination = { collection = "invoke_bench" },
  handler = function(event)
    local n = tonumber(event:bytes()) or 0
    local reqs = {}
    for i = 1, n do
      reqs[i] = { endpoint = "bench", body = { inputs = event.key .. " chunk " .. i } }
    end
    local rs = mmpipe.invoke_all(reqs)
    local ok = 0
    for _, r in ipairs(rs) do
      if r.status == 200 and r:json() then ok = ok + 1 end
    end
    return { calls = n, ok = ok }
  end,
}
