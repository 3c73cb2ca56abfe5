-- One post through the milter, for test_daemon.sh (the daemon's policy
-- settings). What to send and what to expect come from the environment:
--   MT_POST     the message file in MT_DIR (NAME.eml or NAME.txt)
--   MT_SENDER   envelope sender (default <alice@example.org>)
--   MT_RCPT     the list recipient (default <list@example.org>)
--   MT_EXPECT   "recrypted": body replaced, recipients and sender changed;
--               "fanout": a plaintext post delivered as it came (recipients
--               and sender changed, Recrypt-Encrypted: no added, body kept);
--               "CODE XCODE" (e.g. "552 5.3.4"): refused with that reply,
--               no change asked for
--   MT_STEP     where a refusal comes (default "eom"; "body" for the size)
--   MT_TEXT     words the refusal's text must hold (case-insensitive)
--   MT_ADDED    the member addresses that must be added, comma-separated
--               (default alice@example.org,bob@example.org)
--   MT_STANZAS  for "recrypted": the number of Stanza fields in the new body
dofile(os.getenv("MT_LIB"))

local label = os.getenv("MT_NAME") or "post"
local file = os.getenv("MT_POST") or error("MT_POST is not set")
local sender = os.getenv("MT_SENDER") or "<alice@example.org>"
local rcpt = os.getenv("MT_RCPT") or "<list@example.org>"
local expect = os.getenv("MT_EXPECT") or error("MT_EXPECT is not set")

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local fields, body = parse_message(slurp(DIR .. "/" .. file))
local conn = connect()
local r, step = transaction(conn, sender, {rcpt}, fields, body)
local qid = QID

-- The delivery checks shared by "recrypted" and "fanout".
local function delivered()
  check(step == "eom" and r == SMFIR_CONTINUE, label .. ": continue at end of message",
        rname(r) .. " at " .. step .. " " .. last_reply(qid))
  check(n_replies(qid) == 0, label .. ": no SMTP reply set", last_reply(qid))
  check(mt.eom_check(conn, MT_RCPTDELETE, rcpt), label .. ": list recipient " .. rcpt .. " deleted",
        changes(qid))
  local want = {}
  for a in (os.getenv("MT_ADDED") or "alice@example.org,bob@example.org"):gmatch("[^,]+") do
    want[#want + 1] = a
  end
  local added = {}
  for _, l in ipairs(packets(qid)) do
    if l:sub(1, 1) == "+" or l:sub(1, 1) == "2" then added[#added + 1] = l:sub(3) end
  end
  local all = #added == #want
  for _, a in ipairs(want) do
    local found = false
    for _, b in ipairs(added) do
      if b:match("^<" .. escape(a) .. ">") then found = true end
    end
    all = all and found
  end
  check(all, label .. ": recipients replaced by the active members (" .. table.concat(want, ", ") .. ")",
        "added: " .. table.concat(added, ", "))
  local lp, dom = rcpt:match("^<([^@]+)@([^>]+)>$")
  local bounce = (lp or "?") .. "-bounces@" .. (dom or "?")
  check(sent(qid, "e", "^<" .. escape(bounce) .. ">"), label .. ": envelope sender changed to " .. bounce,
        changes(qid))
end

if expect == "recrypted" then
  delivered()
  check(mt.eom_check(conn, MT_BODYCHANGE), label .. ": body replaced (recrypted)")
  local want = tonumber(os.getenv("MT_STANZAS") or "")
  if want then
    local nb = new_body(qid) or ""
    local n = 0
    for _ in nb:gmatch("\nStanza: ") do n = n + 1 end
    check(n == want, label .. ": " .. want .. " stanzas in the new body", n .. " found")
  end
elseif expect == "fanout" then
  delivered()
  check(not mt.eom_check(conn, MT_BODYCHANGE) and (new_body(qid) or "") == "",
        label .. ": body unchanged (no body replacement asked for)")
  local v = mt.getheader(conn, "Recrypt-Encrypted", 0)
  check(v ~= nil and v:match("^no") ~= nil, label .. ": Recrypt-Encrypted: no added", tostring(v))
  check(mt.getheader(conn, "Recrypt-Processed", 0) == nil, label .. ": no Recrypt-Processed mark on plaintext")
else
  local code, xcode = expect:match("^(%d%d%d) (%d%.%d+%.%d+)$")
  if not code then error("MT_EXPECT: '" .. expect .. "' is not recrypted, fanout or 'CODE X.Y.Z'") end
  local want_step = os.getenv("MT_STEP") or "eom"
  check(step == want_step, label .. ": refused at " .. want_step,
        "stopped at " .. step .. " with " .. rname(r) .. " " .. last_reply(qid))
  check_code(label .. ": " .. expect, r, qid, code .. "[- ]" .. escape(xcode))
  -- MT_TEXT: words the reply must say; several separated by '|'.
  local words = os.getenv("MT_TEXT")
  if words and words ~= "" then
    local text = last_reply(qid)
    for w in words:gmatch("[^|]+") do
      check(text:lower():find(w:lower(), 1, true) ~= nil, label .. ": the reply says '" .. w .. "'", text)
    end
  end
  check(changes(qid) == "", label .. ": no change asked for", changes(qid))
end
mt.disconnect(conn)
