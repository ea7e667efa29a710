-- A handler slower than the arrival rate (60 ms per event on the worker
-- pool) that needs only the event's metadata: for the backpressure test.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "slow-metadata",
  match = {},
  fetch = false,
  destination = { collection = "slow_events" },
  handler = function(event)
    mmpipe.tools.slow.sleep(event.key, { ms = 60 })
    return { key = event.key, size = event.size }
  end,
}
