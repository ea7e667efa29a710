-- One inference call described by the event's file (JSON: endpoint, body,
-- content_type, custom_attributes); the document is what came back.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "invoke-one",
  match = { key_suffix = ".call" },
  destination = { collection = "calls" },
  handler = function(event)
    local c = mmpipe.json.decode(event:bytes())
    local r = mmpipe.invoke(c.endpoint, c.body, { content_type = c.content_type, accept = "application/json",
                                                  custom_attributes = c.custom_attributes })
    return { status = r.status, body = r.body, content_type = r.headers["content-type"],
             custom_attributes = r.headers["x-amzn-sagemaker-custom-attributes"],
             variant = r.headers["x-amzn-invoked-production-variant"] }
  end,
}
