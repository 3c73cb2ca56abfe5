-- Case 5: a post that already carries stanzas. Without a valid
-- Recrypt-Processed mark (none, or a forged one) it gets 554 5.7.1; the
-- milter's own output (recrypt.lua wrote it) passes unchanged.
dofile(os.getenv("MT_LIB"))

local conn = connect()
local fields, body = post("recrypted")   -- rc-harness recrypt-store output
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom", "stanzas, no mark: reaches end of message", step .. " " .. rname(r))
check_code("stanzas, no mark: 554 5.7.1", r, QID, "554 5%.7%.1")
check(changes(QID) == "", "stanzas, no mark: no change", changes(QID))

local forged = {}
for _, f in ipairs(fields) do forged[#forged + 1] = f end
forged[#forged + 1] = {"Recrypt-Processed", string.rep("A", 43)}
r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, forged, body)
check_code("stanzas, forged mark: 554 5.7.1", r, QID, "554 5%.7%.1")
check(changes(QID) == "", "stanzas, forged mark: no change", changes(QID))

-- The milter's own output, sent to the list again (a loop): passes as is.
local f = io.open(OUT .. "/recrypt-1.eml", "rb")
if check(f ~= nil, "the delivered post of recrypt.lua is there") then
  local own_fields, own_body = parse_message(f:read("a"))
  f:close()
  r, step = transaction(conn, "<list-bounces@example.org>", {"<list@example.org>"}, own_fields, own_body)
  check(step == "eom" and r == SMFIR_ACCEPT, "own output: accepted at end of message",
        rname(r) .. " at " .. step .. " " .. last_reply(QID))
  check(changes(QID) == "" and n_replies(QID) == 0, "own output: passed unchanged", changes(QID))

  -- The same with the mark of another post: refused.
  local other = {}
  for _, x in ipairs(own_fields) do
    if x[1] == "Recrypt-Processed" then
      local v = x[2]
      local c = v:sub(1, 1) == "A" and "B" or "A"
      other[#other + 1] = {x[1], c .. v:sub(2)}
    else
      other[#other + 1] = x
    end
  end
  r, step = transaction(conn, "<list-bounces@example.org>", {"<list@example.org>"}, other, own_body)
  check_code("own output with a changed mark: 554 5.7.1", r, QID, "554 5%.7%.1")
end
mt.disconnect(conn)
