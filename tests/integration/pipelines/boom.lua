-- Test pipeline: a handler that raises an error (for files ending in .boom).
local mmpipe = require "mmpipe"

local function explode(what)
  error("boom")
end

return mmpipe.pipeline {
  name = "raises-boom",
  match = { key_suffix = ".boom" },
  destination = { collection = "never" },
  handler = function(event)
    explode(event.key)
    return { never = true }
  end,
}
