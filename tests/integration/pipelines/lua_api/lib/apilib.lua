-- A library module for test_lua_api.sh, found by require "apilib" in the
-- lib/ folder beside the pipelines folder. Runs in the same sandbox.
local strings = require "apilib.strings"

local M = {}

function M.greet(name)
  return strings.upper_first("hello, " .. name)
end

-- What the sandbox lets a library see.
M.sees_io = type(io)

return M
