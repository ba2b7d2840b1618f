-- wrk script for the audit section of scripts/bench.sh: image scrolling. Cycles through the
-- paths of a file (one a line; `wrk -t THREADS ... URL -- FILE THREADS`), a viewer scrolling
-- study after study.
-- Each wrk thread starts at its own offset in the list, so the threads do not ask for the same
-- image at the same moment. The summary line comes from wrk-report.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk-report.lua")

local threads = 0
setup = function(thread)
  thread:set("index", threads)
  threads = threads + 1
end

local paths, i = {}, 0
init = function(args)
  local f = assert(io.open(args[1], "r"), "cannot read the list of paths")
  for line in f:lines() do
    if line ~= "" then paths[#paths + 1] = line end
  end
  f:close()
  assert(#paths > 0, "empty list of paths")
  -- setup() has numbered this thread (global `index`) but cannot know how many will follow.
  local n = tonumber(args[2] or "1") or 1
  i = math.floor(#paths * (tonumber(index) or 0) / math.max(n, 1))
end

request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
