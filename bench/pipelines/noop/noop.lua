-- A handler that does nothing but return one small document: what is left
-- to measure is the engine itself (fetch, route, coroutine, store).
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "noop",
  match = {},
  destination = { collection = "noop" },
  handler = function(event)
    return { size = event.size }
  end,
}
