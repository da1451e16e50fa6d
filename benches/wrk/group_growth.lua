-- One group gains members one PATCH at a time (Entra's shape), from line START of the file
-- IDS on. Environment: TOKEN, GROUP (the group id), IDS (user ids, one a line), START.
local ids = {}
local next_line

function init()
  for line in io.lines(os.getenv("IDS")) do
    ids[#ids + 1] = line
  end
  next_line = tonumber(os.getenv("START") or "1")
end

function request()
  local id = ids[next_line] or ids[#ids]
  next_line = next_line + 1
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[' ..
    '{"op":"Add","path":"members","value":[{"value":"' .. id .. '"}]}]}'
  return wrk.format("PATCH", "/scim/v2/Groups/" .. os.getenv("GROUP"), {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/scim+json",
  }, body)
end

function response(status)
  if status ~= 204 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
