-- The OpenResty peer of ngx_http_stytch_tat_module, for bench/hit.sh: the
-- same exchange written as an OpenResty user would write it with Debian
-- 12's packages (libnginx-mod-http-lua, lua-resty-core, lua-resty-lrucache,
-- lua-cjson, lua-luaossl).
--
--   * the signing key loaded once (init_by_lua), RS256 with luaossl;
--   * sessions in a lua_shared_dict with expiry, behind a per-worker LRU;
--   * the raw identity as the key (a shared dict hashes it itself);
--   * one attest per identity at a time: an add() lock in the dict, the
--     others poll it every 10 ms (lua-resty-lock is not packaged);
--   * the attest through ngx.location.capture to the same internal
--     location as the module's (which adds the Basic credentials).
--
-- Not a product: no error mapping beyond 401/403/502, no refresh.

local cjson = require "cjson.safe"
local pkey = require "openssl.pkey"
local digest = require "openssl.digest"
local rand = require "openssl.rand"
local lrucache = require "resty.lrucache"

local ngx = ngx
local encode_base64 = ngx.encode_base64
local gsub = string.gsub
local now = ngx.time

local _M = {}

local key, header, cfg
local lru
local dict

local b64url_map = { ["+"] = "-", ["/"] = "_", ["="] = "" }

local function b64url(s)
    return (gsub(encode_base64(s), "[+/=]", b64url_map))
end

-- cfg: key_file, kid, issuer, audience, profile_id, ttl, attest_uri
function _M.init(c)
    cfg = c
    local f = assert(io.open(c.key_file, "rb"))
    key = assert(pkey.new(f:read("*a"), "PEM", "private"))
    f:close()
    header = b64url(cjson.encode({ alg = "RS256", typ = "JWT", kid = c.kid }))
    dict = ngx.shared.stytch_tat
end

function _M.init_worker()
    lru = assert(lrucache.new(20000))
end

local function split(s, sep)
    local t = {}
    for v in string.gmatch(s, "[^" .. sep .. "]+") do
        t[#t + 1] = v:match("^%s*(.-)%s*$")
    end
    return t
end

local function mint(email, sub, groups)
    local t = now()
    local claims = {
        iss = cfg.issuer, aud = cfg.audience, sub = sub ~= "" and sub or nil,
        email = email, jti = b64url(rand.bytes(16)),
        iat = t, nbf = t, exp = t + cfg.ttl,
    }
    if groups ~= "" then
        claims.assignments = split(groups, ",")
    end
    local input = header .. "." .. b64url(cjson.encode(claims))
    local d = digest.new("sha256")
    d:update(input)
    return input .. "." .. b64url(key:sign(d))
end

-- "2026-11-29T23:55:00Z" (a fraction, if any, ignored) to epoch seconds
local function rfc3339(s)
    local y, mo, d, h, mi, se = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
    if not y then
        return nil
    end
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    if mo <= 2 then
        y = y - 1
    end
    -- days from civil (H. Hinnant)
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    local days = era * 146097 + doe - 719468
    return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
end

local function jwt_exp(jwt)
    local p = jwt:match("^[^.]+%.([^.]+)%.")
    if not p then
        return nil
    end
    p = gsub(p, "[-_]", { ["-"] = "+", ["_"] = "/" })
    p = p .. string.rep("=", (4 - #p % 4) % 4)
    local c = cjson.decode(ngx.decode_base64(p) or "")
    return c and c.exp
end

local function attest(k, email, sub, groups)
    local body = cjson.encode({
        profile_id = cfg.profile_id,
        token = mint(email, sub, groups),
        session_duration_minutes = 60,
    })
    local res = ngx.location.capture(cfg.attest_uri, {
        method = ngx.HTTP_POST, body = body,
    })
    if res.status ~= 200 then
        return nil, (res.status >= 400 and res.status < 500) and 403 or 502
    end
    local a = cjson.decode(res.body)
    if not a or not a.session_jwt or not a.session then
        return nil, 502
    end
    local s = {
        jwt = a.session_jwt,
        user_id = a.user_id or a.session.user_id,
        session_id = a.session.session_id,
    }
    local until_ = math.min(rfc3339(a.session.expires_at or "") or 0,
                            (jwt_exp(s.jwt) or 0) - 60)
    local ttl = until_ - now()
    if ttl <= 0 then
        return s
    end
    dict:set(k, s.jwt .. "\n" .. s.user_id .. "\n" .. s.session_id, ttl)
    lru:set(k, s, ttl)
    return s
end

local function lookup(k)
    local v, _, stale = dict:get(k)
    if not v or stale then
        return nil
    end
    local jwt, user_id, session_id = v:match("^([^\n]*)\n([^\n]*)\n(.*)$")
    local s = { jwt = jwt, user_id = user_id, session_id = session_id }
    local ttl = dict:ttl(k)
    if ttl and ttl > 0 then
        lru:set(k, s, ttl)
    end
    return s
end

-- for bench/hit.sh's warm-up: how many sessions the dict holds
function _M.status()
    local n = 0
    for _, k in ipairs(dict:get_keys(0)) do
        if not k:find("\0lock", 1, true) then
            n = n + 1
        end
    end
    ngx.header.content_type = "application/json"
    ngx.say('{"entries":', n, '}')
end

function _M.access()
    local var = ngx.var
    local email = var.http_x_email
    if not email or email == "" then
        return ngx.exit(401)
    end
    local sub = var.http_x_user or ""
    local groups = var.http_x_groups or ""
    local k = email .. "\0" .. sub .. "\0" .. groups

    local s = lru:get(k) or lookup(k)

    if not s then
        -- one attest per identity: the others wait for its answer
        local lock = k .. "\0lock"
        for _ = 1, 500 do
            if dict:add(lock, true, 10) then
                local err
                s, err = attest(k, email, sub, groups)
                dict:delete(lock)
                if not s then
                    return ngx.exit(err)
                end
                break
            end
            ngx.sleep(0.01)
            s = lookup(k)
            if s then
                break
            end
        end
        if not s then
            return ngx.exit(504)
        end
    end

    ngx.req.set_header("X-Stytch-Session-Jwt", s.jwt)
    ngx.req.set_header("X-Stytch-User-Id", s.user_id)
    ngx.req.set_header("X-Stytch-Session-Id", s.session_id)
end

return _M
