-- Case 1: a sealed post to list@example.org is recrypted. At end of
-- message the milter deletes the list recipient (as it was given), adds
-- alice and bob (not carol, suspended), changes the envelope sender to the
-- bounce address, replaces the body (one stanza per active device: 3) and
-- adds List-Id, List-Post, Recrypt-List-Key, Recrypt-Service-Signature and
-- Recrypt-Processed.
-- Writes the delivered message to MT_OUT/recrypt-1.eml for the shell test
-- (recrypt open) and processed.lua (a post already processed).
dofile(os.getenv("MT_LIB"))

local fields, body = post("post1")
local conn = connect()
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
local qid = QID
check(step == "eom" and r == SMFIR_CONTINUE, "sealed post: continue at end of message",
      rname(r) .. " at " .. step .. " " .. last_reply(qid))
check(n_replies(qid) == 0, "sealed post: no SMTP reply set", last_reply(qid))
check(mt.eom_check(conn, MT_RCPTDELETE, "<list@example.org>"), "list recipient deleted as given")
check(mt.eom_check(conn, MT_RCPTADD, "<alice@example.org>"), "alice added")
check(mt.eom_check(conn, MT_RCPTADD, "<bob@example.org>"), "bob added")
check(not mt.eom_check(conn, MT_RCPTADD, "<carol@example.org>"), "carol (suspended) not added")
local adds, receipts = 0, 0
for _, l in ipairs(packets(qid)) do
  if l:sub(1, 1) == "+" or l:sub(1, 1) == "2" then
    if l:match("^[+2] <%x+@receipt%.example%.net>$") then receipts = receipts + 1 else adds = adds + 1 end
  end
end
check(adds == 2, "exactly two member recipients added", adds .. " added")
check(receipts == 1, "one delivery receipt recipient (48 hex digits @receipt.example.net) added",
      receipts .. " added: " .. changes(qid))
check(sent(qid, "e", "^<list%-bounces@example%.org>"), "envelope sender changed to the bounce address",
      changes(qid))
check(mt.eom_check(conn, MT_BODYCHANGE), "body replaced")
check(mt.eom_check(conn, MT_HDRADD, "List-Id", "<list.example.org>"), "List-Id: <list.example.org> added")
check(mt.eom_check(conn, MT_HDRADD, "List-Post", "<mailto:list@example.org>"),
      "List-Post: <mailto:list@example.org> added")
local key = mt.getheader(conn, "Recrypt-List-Key", 0)
local list_key = slurp(DIR .. "/list.key"):gsub("%s", "")
check(key ~= nil and key:gsub("%s", "") == list_key, "Recrypt-List-Key added: the list key of the epoch",
      tostring(key))
-- The service signature of the copy (FORMAT.md 8.1): 86 base64url
-- characters once unfolded; the members' recrypt open checks it below.
local svcsig = mt.getheader(conn, "Recrypt-Service-Signature", 0)
check(svcsig ~= nil and #svcsig:gsub("%s", "") == 86 and svcsig:gsub("%s", ""):match("^[A-Za-z0-9_-]+$"),
      "Recrypt-Service-Signature added (86 base64url characters)", tostring(svcsig))
check(mt.getheader(conn, "Recrypt-List-Key-Current", 0) == nil,
      "no Recrypt-List-Key-Current for a post of the current epoch")
local mark = mt.getheader(conn, "Recrypt-Processed", 0)
check(mark ~= nil and mark:match("^[A-Za-z0-9_-]+$") and #mark == 43,
      "Recrypt-Processed added (43 base64url characters)", tostring(mark))

-- The new body: the relay kept it.
local nb = new_body(qid)
if check(nb ~= nil and #nb > 0, "the new body was captured") then
  local stanzas = 0
  for _ in nb:gmatch("\nStanza: ") do stanzas = stanzas + 1 end
  check(stanzas == 3, "new body: 3 Stanza fields (alice 1 device, bob 2; carol suspended)",
        stanzas .. " found")
  check(nb:find("\r\n", 1, true) ~= nil and nb:gsub("\r\n", ""):find("\n", 1, true) == nil,
        "new body: CRLF line ends only")
  local old = body:match("\nProof: [^\r]*")
  check(old ~= nil and nb:find(old, 1, true) ~= nil, "new body: the post's proof kept")
  -- The delivered message as the MTA would write it: the post's header
  -- fields, the added ones, the new body.
  local out = {}
  for _, f in ipairs(fields) do out[#out + 1] = f[1] .. ": " .. f[2] end
  for _, h in ipairs({"List-Id", "List-Post", "Recrypt-List-Key", "Recrypt-Processed",
                      "Recrypt-Service-Signature"}) do
    local v = mt.getheader(conn, h, 0)
    if v then out[#out + 1] = h .. ": " .. v end
  end
  local f = assert(io.open(OUT .. "/recrypt-1.eml", "wb"))
  f:write(table.concat(out, "\n") .. "\n\n" .. nb:gsub("\r\n", "\n"))
  f:close()
end
mt.disconnect(conn)
