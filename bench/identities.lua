-- wrk script: every request carries one of IDENTITIES identities, in turn
-- (all of them cached after the warm-up), or, with COLD=1, a new identity
-- every request.  COOKIE="stytch_session_jwt=..." adds that Cookie header to
-- every request (the cluster-mode variant: one identity and its cookie).
local n = tonumber(os.getenv("IDENTITIES") or "100")
local cold = os.getenv("COLD") == "1"
local cookie = os.getenv("COOKIE")
local counter = 0
local thread_id = 0

function setup(thread)
    thread_id = thread_id + 1
    thread:set("tid", thread_id)
end

function request()
    counter = counter + 1
    local who
    if cold then
        who = string.format("cold-%d-%d-%d", tid or 0, os.time(), counter)
    else
        who = string.format("user%d", counter % n)
    end
    return wrk.format("GET", nil, {
        ["X-Email"] = who .. "@example.com",
        ["X-User"] = who,
        ["X-Groups"] = "editor,reader",
        ["Cookie"] = cookie,
    })
end
