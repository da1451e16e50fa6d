-- POST /Users with unique userNames `<PREFIX>-<thread>-<n>@bench.test`: the create half of an
-- Entra initial cycle. Environment: TOKEN (the connection's bearer token), PREFIX.
local counter = 0
local threads = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function request()
  counter = counter + 1
  local name = string.format("%s-%d-%d@bench.test", os.getenv("PREFIX") or "user", thread_number, counter)
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","externalId":"' .. name .. '","name":{"givenName":"Bench","familyName":"User"},' ..
    '"emails":[{"value":"' .. name .. '","type":"work","primary":true}],"active":true}'
  return wrk.format("POST", "/scim/v2/Users", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/scim+json",
  }, body)
end

function response(status)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
