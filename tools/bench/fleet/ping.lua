-- wrk script: status pings as the restart helper POSTs them, to random agents of the fleet.
local nodes = tonumber(os.getenv("FLEET_AGENTS") or "1000")
local token = os.getenv("NODE_TOKEN") or ""
local seq = 0
math.randomseed(os.time())

request = function()
    seq = seq + 1
    local node = "agent-" .. math.random(1, nodes)
    local body = '{"node":"' .. node .. '","deployment":"","seq":' .. seq ..
        ',"state":"healthy","from_generation":1,"to_generation":2,"release":"2.0.0",' ..
        '"message":"","time":"2026-01-01T00:00:00.000Z"}'
    return wrk.format("POST", "/v1/nodes/" .. node .. "/status",
        {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
