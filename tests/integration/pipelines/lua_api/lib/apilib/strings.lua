-- A nested library module: require "apilib.strings" -> lib/apilib/strings.lua.
return {
  upper_first = function(s) return (s:gsub("^%l", string.upper)) end,
}
