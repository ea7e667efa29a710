-- Metadata-only events for the Kafka source's tests: the key ending
-- "-00000.txt" waits 12 s in the slow plugin (test_kafka_ledger_bound.sh),
-- keys ending ".boom" fail (test_kafka_dead_letter_retry.sh), the rest are
-- stored at once.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "stuck-head",
  match = {},
  fetch = false,
  destination = { collection = "stuck_events" },
  handler = function(event)
    if event.key:match("%.boom$") then
      error("boom: " .. event.key)
    end
    if event.key:match("%-00000%.txt$") then
      mmpipe.tools.slow.sleep(event.key, { ms = 12000 })
    end
    return { key = event.key }
  end,
}
