-- Test pipeline: a handler that waits on a 5 s plugin call (for files
-- ending in .wait); with a shorter deadline it must fail while waiting.
-- Needs slow.so (tests/plugins/slow.c).
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "waits-long",
  match = { key_suffix = ".wait" },
  destination = { collection = "never" },
  handler = function(event)
    mmpipe.tools.slow.sleep("x", { ms = 5000 })
    return { never = true }
  end,
}
