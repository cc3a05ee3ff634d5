-- wrk script for bench/soak-reload.sh: every request carries one of
-- SOAK_IDENTITIES identities (PREFIX-0 .. PREFIX-(K-1), the names
-- bench/soak/load.mjs gives with --identities cycle:K --prefix PREFIX), in
-- turn; the answers are counted by status and by $stytch_tat_cache_status
-- (X-Soak-Cache) and printed by done() as one line:
--   statuses 200=N ... cache HIT=N ...
local n = tonumber(os.getenv("SOAK_IDENTITIES") or "200")
local prefix = os.getenv("SOAK_PREFIX") or "cached"
local threads = {}
local counter = 0

function setup(thread)
    table.insert(threads, thread)
    thread:set("offset", #threads * 7919)
end

function init(args)
    statuses = {}
    cache = {}
end

function request()
    counter = counter + 1
    local who = string.format("%s-%d", prefix, (counter + (offset or 0)) % n)
    return wrk.format("GET", nil, {
        ["X-Email"] = who .. "@example.com",
        ["X-User"] = who,
        ["X-Groups"] = "editor,reader",
    })
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    local c = headers["X-Soak-Cache"] or "-"
    cache[c] = (cache[c] or 0) + 1
end

function done(summary, latency, requests)
    local s, c = {}, {}
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("statuses")) do s[k] = (s[k] or 0) + v end
        for k, v in pairs(t:get("cache")) do c[k] = (c[k] or 0) + v end
    end
    local line = "statuses"
    for k, v in pairs(s) do line = line .. string.format(" %s=%d", k, v) end
    line = line .. " cache"
    for k, v in pairs(c) do line = line .. string.format(" %s=%d", k, v) end
    io.write(line .. "\n")
end
