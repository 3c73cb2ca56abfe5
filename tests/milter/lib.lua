-- Shared helpers for the recrypt-milter miltertest scripts (loaded with
-- dofile by each script). Settings come from the environment, set by
-- test_miltertest.sh: MT_SOCKET (inet:PORT@127.0.0.1) and per-script
-- file paths. Each check prints "ok - ..." or "FAIL - ..." on stdout;
-- the shell test counts them.

SOCKET = os.getenv("MT_SOCKET") or error("MT_SOCKET is not set")
DIR = os.getenv("MT_DIR") or error("MT_DIR is not set")   -- the posts
OUT = os.getenv("MT_OUT") or error("MT_OUT is not set")   -- the relay's records
io.stdout:setvbuf("line")
mt.set_timeout(tonumber(os.getenv("MT_TIMEOUT") or "20"))

local qid_n = 0

function ok(name) print("ok - " .. name) end
function fail(name) print("FAIL - " .. name) end
function check(cond, name, why)
  if cond then ok(name) else fail(name .. (why and (": " .. why) or "")) end
  return cond
end

local names = {}
for _, n in ipairs({"SMFIR_CONTINUE", "SMFIR_ACCEPT", "SMFIR_REJECT", "SMFIR_TEMPFAIL",
                    "SMFIR_DISCARD", "SMFIR_REPLYCODE", "SMFIR_SKIP"}) do
  if _G[n] ~= nil then names[_G[n]] = n end
end
-- The name of a milter reply (as mt.getreply returns it).
function rname(r)
  if r == nil then return "nil" end
  return names[r] or string.format("'%s'(%d)", string.char(r % 256), r)
end

-- Read a whole file.
function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Split an RFC 5322 message into header fields {name, value} (folded
-- fields unfolded into the value with their "\n" and leading white space,
-- as an MTA hands them to a milter) and the body with CRLF line ends.
function parse_message(text)
  text = text:gsub("\r\n", "\n")
  local head, body = text:match("^(.-)\n\n(.*)$")
  if not head then head, body = text, "" end
  local fields = {}
  for line in (head .. "\n"):gmatch("(.-)\n") do
    if line:match("^[ \t]") and #fields > 0 then
      fields[#fields][2] = fields[#fields][2] .. "\n" .. line
    else
      local n, v = line:match("^([^:]+):[ \t]?(.*)$")
      if n then fields[#fields + 1] = {n, v} end
    end
  end
  return fields, (body:gsub("\n", "\r\n"))
end

-- A new connection, with connection information. Errors are fatal.
function connect()
  local conn = mt.connect(SOCKET, 5, 0.5)
  if conn == nil then error("cannot connect to the milter at " .. SOCKET) end
  local e = mt.conninfo(conn, "client.example.net", "127.0.0.1")
  if e ~= nil then error("mt.conninfo: " .. e) end
  if mt.getreply(conn) ~= SMFIR_CONTINUE then error("conninfo: " .. rname(mt.getreply(conn))) end
  return conn
end

-- MAIL FROM with a fresh queue id (macro "i"): NAME-1, NAME-2, ... where
-- NAME is the script's (MT_NAME); the current one is in QID.
function mailfrom(conn, sender)
  qid_n = qid_n + 1
  QID = (os.getenv("MT_NAME") or "mt") .. "-" .. qid_n
  mt.macro(conn, SMFIC_MAIL, "i", QID)
  local e = mt.mailfrom(conn, sender or "<alice@example.org>")
  if e ~= nil then error("mt.mailfrom: " .. e) end
  return mt.getreply(conn)
end

-- RCPT TO: the milter's reply.
function rcptto(conn, rcpt)
  local e = mt.rcptto(conn, rcpt)
  if e ~= nil then error("mt.rcptto(" .. rcpt .. "): " .. e) end
  return mt.getreply(conn)
end

-- DATA: the milter's reply (recrypt-milter accepts mail that names no
-- list here, before any header).
function data(conn)
  local e = mt.data(conn)
  if e ~= nil then error("mt.data: " .. e) end
  return mt.getreply(conn)
end

-- Headers, end of headers; stops early (returning the reply) if the
-- milter does not say continue.
function send_headers(conn, fields)
  for _, f in ipairs(fields) do
    local e = mt.header(conn, f[1], f[2])
    if e ~= nil then error("mt.header(" .. f[1] .. "): " .. e) end
    if mt.getreply(conn) ~= SMFIR_CONTINUE then return mt.getreply(conn) end
  end
  local e = mt.eoh(conn)
  if e ~= nil then error("mt.eoh: " .. e) end
  return mt.getreply(conn)
end

-- Body in chunks of at most SIZE bytes (default 65535, what MTAs send).
function send_body(conn, body, size)
  size = size or 65535
  local i = 1
  while i <= #body do
    local e = mt.bodystring(conn, body:sub(i, i + size - 1))
    if e ~= nil then error("mt.bodystring: " .. e) end
    if mt.getreply(conn) ~= SMFIR_CONTINUE then return mt.getreply(conn) end
    i = i + size
  end
  return SMFIR_CONTINUE
end

function eom(conn)
  local e = mt.eom(conn)
  if e ~= nil then error("mt.eom: " .. e) end
  return mt.getreply(conn)
end

-- A whole transaction: MAIL, RCPTs (each must be accepted), DATA, headers, body,
-- end of message (the body in chunks of CHUNK bytes). Returns the reply at the first step that did not
-- continue, and that step's name.
function transaction(conn, sender, rcpts, fields, body, chunk)
  local r = mailfrom(conn, sender)
  if r ~= SMFIR_CONTINUE then return r, "mail" end
  for _, rc in ipairs(rcpts) do
    r = rcptto(conn, rc)
    if r ~= SMFIR_CONTINUE then return r, "rcpt " .. rc end
  end
  r = data(conn)
  if r ~= SMFIR_CONTINUE then return r, "data" end
  r = send_headers(conn, fields)
  if r ~= SMFIR_CONTINUE then return r, "header" end
  r = send_body(conn, body, chunk)
  if r ~= SMFIR_CONTINUE then return r, "body" end
  return eom(conn), "eom"
end


-- A post of the shell test: MT_DIR/NAME.eml parsed.
function post(name)
  return parse_message(slurp(DIR .. "/" .. name .. ".eml"))
end

-- What the relay recorded for queue id QID: the packets the milter sent,
-- one line each ("y 452 4.5.3 text", "e <bounce>", "b 1234", "c", ...).
function packets(qid)
  local f = io.open(OUT .. "/" .. qid .. ".log", "r")
  local t = {}
  if not f then return t end
  for line in f:lines() do t[#t + 1] = line end
  f:close()
  return t
end

-- The last SMTP reply the milter gave in transaction QID ("" if none).
function last_reply(qid)
  local r = ""
  for _, l in ipairs(packets(qid)) do
    if l:sub(1, 2) == "y " then r = l:sub(3) end
  end
  return r
end

-- How many SMTP replies the milter gave in transaction QID.
function n_replies(qid)
  local n = 0
  for _, l in ipairs(packets(qid)) do
    if l:sub(1, 2) == "y " then n = n + 1 end
  end
  return n
end

-- Did the milter send a packet of command CMD (a letter) whose text
-- matches the Lua pattern PAT (or any, without PAT)?
function sent(qid, cmd, pat)
  for _, l in ipairs(packets(qid)) do
    if l:sub(1, 1) == cmd and (pat == nil or l:sub(3):match(pat)) then return true end
  end
  return false
end

-- The body the milter gave at end of message (the relay keeps it).
function new_body(qid)
  local f = io.open(OUT .. "/" .. qid .. ".body", "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Check that the reply to transaction QID (right now) is an SMTP reply
-- whose text starts with CODE (e.g. "452 4.5.3"; "550[- ]5%.7%.1" for a
-- multi-line reply); R is mt.getreply's value.
function check_code(name, r, qid, code)
  local text = last_reply(qid)
  return check(r == SMFIR_REPLYCODE and text:match("^" .. code) ~= nil, name,
               "reply " .. rname(r) .. ", text '" .. text:sub(1, 200) .. "'")
end

-- The changes the milter asked for in transaction QID (header, recipient,
-- sender, body), as the relay recorded them; "" when none.
function changes(qid)
  local t = {}
  for _, l in ipairs(packets(qid)) do
    if ("+-2ehimbq"):find(l:sub(1, 1), 1, true) then t[#t + 1] = l:sub(1, 60) end
  end
  return table.concat(t, "; ")
end
