-- Test pipeline: a handler that never returns (for files ending in .loop).
-- The engine's deadline must stop it and dead-letter the event.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "endless-loop",
  match = { key_suffix = ".loop" },
  destination = { collection = "never" },
  handler = function(event)
    while true do end
  end,
}
