-- The engine's side of bench/end_to_end.sh: the seed's whole flow per file.
-- Every event matches; the object is fetched (the default); three endpoint
-- calls in sequence (extraction on the raw bytes, generation on what the
-- extraction said, embedding of the generation), one document per file.
-- The coroutine yields on every call, so a lane keeps many files in flight.
-- bench/end_to_end_seed.py does exactly the same calls with the same bodies.
local mmpipe = require "mmpipe"

local function check(r, what)
  if r.status ~= 200 then error(what .. ": HTTP " .. tostring(r.status)) end
  return r:json()
end

return mmpipe.pipeline {
  name = "end-to-end",
  match = {},
  destination = { collection = "e2e_engine" },
  handler = function(event)
    local ctype = event.content_type or "application/octet-stream"
    local x = check(mmpipe.invoke("extract", event:bytes(), { content_type = ctype }), "extract")
    local extraction = { bytes = x.body_bytes, sha256 = x.body_sha256 }
    local g = check(mmpipe.invoke("generate", {
      inputs = "Describe " .. event.key .. " (" .. ctype .. ", " .. x.body_bytes .. " bytes, sha256 " .. x.body_sha256 .. ")",
    }), "generate")
    local generation = { sha256 = g.body_sha256, text = g.echo and g.echo.inputs }
    local e = check(mmpipe.invoke("embed", { inputs = generation.text }), "embed")
    return {
      key = event.key,
      content_type = ctype,
      size = event.size,
      extraction = extraction,
      generation = generation,
      embedding = e.embedding,
    }
  end,
}
