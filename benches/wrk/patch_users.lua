-- Entra-style PATCH of users found by userName: replace name, toggle active as the string
-- "False"/"True", replace the work email's value. Environment: TOKEN, IDS (a file of user
-- ids, one a line).
local ids = {}
local counter = 0

function init()
  for line in io.lines(os.getenv("IDS")) do
    ids[#ids + 1] = line
  end
end

function request()
  counter = counter + 1
  local id = ids[math.random(#ids)]
  local active = (counter % 2 == 0) and "True" or "False"
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[' ..
    '{"op":"Replace","path":"name.givenName","value":"Given' .. counter .. '"},' ..
    '{"op":"Replace","path":"active","value":"' .. active .. '"},' ..
    '{"op":"Replace","path":"emails[type eq \\"work\\"].value","value":"w' .. counter .. '-' .. id .. '@bench.test"}]}'
  return wrk.format("PATCH", "/scim/v2/Users/" .. id, {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/scim+json",
  }, body)
end

function response(status)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
