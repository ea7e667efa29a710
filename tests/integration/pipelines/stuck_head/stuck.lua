-- One event far slower than the others (the key ending "-00000.txt" waits
-- 12 s in the slow plugin), the rest immediate and metadata only: for the
-- ledger bound test (test_kafka_ledger_bound.sh).
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "stuck-head",
  match = {},
  fetch = false,
  destination = { collection = "stuck_events" },
  handler = function(event)
    if event.key:match("%-00000%.txt$") then
      mmpipe.tools.slow.sleep(event.key, { ms = 12000 })
    end
    return { key = event.key }
  end,
}
