-- GET /Users?filter=userName eq "<PREFIX>-0-<n>@bench.test" for random n in 2..COUNT-8 (wrk
-- calls request() once before the run, and the last creates may still be in flight): how
-- Entra and Okta find a user before every change. Environment: TOKEN, PREFIX, COUNT.
function request()
  local name = string.format("%s-0-%d@bench.test", os.getenv("PREFIX") or "user", math.random(2, tonumber(os.getenv("COUNT")) - 8))
  return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22" .. name:gsub("@", "%%40") .. "%22", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  })
end

function response(status, headers, body)
  if status ~= 200 or not body:find('"totalResults":1', 1, true) then
    io.stderr:write("lookup missed: " .. status .. "\n")
  end
end
