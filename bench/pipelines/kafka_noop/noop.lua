-- The Kafka consumption benchmark's pipeline (bench/kafka_consume.sh): every
-- event matches, the object is never downloaded (fetch = false) and the
-- handler returns no documents, so what is measured is the engine's
-- consume -> decode -> route -> handler -> acknowledge path.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "kafka-noop",
  description = "benchmark: metadata only, no documents",
  fetch = false,
  match = {},
  destination = { collection = "kafka_noop" },
  handler = function(event)
    return nil
  end,
}
