-- Test pipeline for test_lua_api.sh: each key suffix exercises one part of
-- the handler API and returns what it saw, for the test to check.
local mmpipe = require "mmpipe"
local apilib = require "apilib"

local function api(event)
  local original = { name = "lamp", n = 3, pi = 3.5, list = { 1, 2, 3 },
                     nested = { ok = true, none = mmpipe.json.null }, text = "café €" }
  local encoded = mmpipe.json.encode(original)
  local decoded = mmpipe.json.decode(encoded)
  local bad_json_ok, bad_json_err = pcall(mmpipe.json.decode, "{\"a\": ")
  local bytes = event:bytes()
  local log_ok, log_err = pcall(function() mmpipe.log("api-log-call-marker", event.size) end)
  mmpipe.log.info("api-log-marker", event.size)
  mmpipe.log.warn("api-warn-marker")
  print("api-print-marker", 42)
  local echo = mmpipe.tools.slow.echo("hi")
  local echo_blob = mmpipe.tools.slow.echo(echo.blob)
  local fail_ok, fail_err = pcall(mmpipe.tools.slow.fail, "x")
  local opts_ok, opts_err = pcall(mmpipe.tools.slow.sleep, "x", 5)
  local noplugin_ok, noplugin_err = pcall(function() return mmpipe.tools.nope end)
  local noop_ok, noop_err = pcall(function() return mmpipe.tools.slow.nope end)
  local b64_ok, b64_err = pcall(mmpipe.base64.decode, "!!!")
  local ffi_ok = pcall(require, "ffi")
  return {
    json = { encoded = encoded, decoded = decoded, roundtrip_equal = mmpipe.json.encode(decoded) == encoded,
             error = bad_json_err, error_raised = not bad_json_ok },
    sha256_abc = mmpipe.sha256("abc"),
    sha256_empty = mmpipe.sha256(""),
    b64 = mmpipe.base64.encode("hello world"),
    b64_back = mmpipe.base64.decode("aGVsbG8gd29ybGQ="),
    b64_binary_roundtrip = mmpipe.base64.decode(mmpipe.base64.encode("\0\1\2\255")) == "\0\1\2\255",
    b64_error = b64_err, b64_error_raised = not b64_ok,
    event = { key = event.key, size = event.size, content_type = event.content_type, etag = event.etag,
              path = event.path, bucket = event.bucket, url = event.url,
              bytes_len = #bytes, bytes_sha256 = mmpipe.sha256(bytes) },
    lib = { greet = apilib.greet("world"), sees_io = apilib.sees_io },
    echo = { kind = echo.kind, input = echo.input, blob_size = echo.blob.size,
             blob_content_type = echo.blob.content_type, blob_len = #echo.blob, blob_bytes = echo.blob.bytes,
             kind_of_blob_input = echo_blob.kind },
    errors = { fail = fail_err, fail_raised = not fail_ok, opts = opts_err, opts_raised = not opts_ok,
               no_plugin = noplugin_err, no_plugin_raised = not noplugin_ok,
               no_op = noop_err, no_op_raised = not noop_ok },
    sandbox = { io = type(io), os_execute = type(os.execute), loadfile = type(loadfile), dofile = type(dofile),
                debug = type(debug), load = type(load), loadstring = type(loadstring),
                string_dump = type(string.dump), require_ffi = ffi_ok, os_time = type(os.time) },
    mmpipe_plugins = mmpipe.plugins(),
    log_call = { ok = log_ok, error = log_err },
  }
end

return mmpipe.pipeline {
  name = "lua-api",
  match = { key_suffix = { ".api", ".list", ".none", ".empty", ".func", ".funclist" } },
  destination = { collection = "api" },
  handler = function(event)
    local k = event.key
    if k:match("%.api$") then return api(event) end
    if k:match("%.list$") then return { { n = 1 }, { n = 2 }, { n = 3 } } end
    if k:match("%.none$") then return nil end
    if k:match("%.empty$") then return {} end
    if k:match("%.func$") then return { ok = 1, nested = { callback = function() end } } end
    return { { n = 1 }, { n = 2, meta = { fn = print } } }
  end,
}
