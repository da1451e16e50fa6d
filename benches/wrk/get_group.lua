-- GET /Groups/{id}?excludedAttributes=members, as Entra reads a group before every change.
-- Environment: TOKEN, GROUP.
function request()
  return wrk.format("GET", "/scim/v2/Groups/" .. os.getenv("GROUP") .. "?excludedAttributes=members", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  })
end

function response(status)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
