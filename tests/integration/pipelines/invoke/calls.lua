-- Drives inference calls from a test file: each line of the file is one
-- step {"endpoint": "e", "count": n, "body": ...}; steps run in order, the
-- calls of one step concurrently. One document per step records what the
-- handler saw (statuses, attempts, errors, time taken).
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "invoke-steps",
  match = { key_suffix = ".steps" },
  destination = { collection = "steps" },
  handler = function(event)
    local docs = {}
    local n = 0
    for line in event:bytes():gmatch("[^\n]+") do
      n = n + 1
      local step = mmpipe.json.decode(line)
      local reqs = {}
      for i = 1, step.count or 1 do
        reqs[i] = { endpoint = step.endpoint, body = step.body or { inputs = "call " .. i },
                    opts = { custom_attributes = step.custom_attributes } }
      end
      local t0 = os.time()
      local clock0 = os.clock()
      local rs = mmpipe.invoke_all(reqs, { errors = "return" })
      local doc = { step = n, endpoint = step.endpoint, statuses = {}, attempts = {}, errors = {} }
      for i, r in ipairs(rs) do
        doc.statuses[i] = r.status
        doc.attempts[i] = r.attempts
        doc.errors[i] = r.error or ""
        if i == 1 and r.ok then doc.echo = r:json() end
      end
      docs[#docs + 1] = doc
    end
    return docs
  end,
}
