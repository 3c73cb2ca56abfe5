-- Case 11 (issue 13 items 7 and 8): the gateway's structural checks of a
-- sealed post (docs/FORMAT.md section 9.3), each a 554 5.6.0 whose text
-- says what is wrong, never a 250; and a sealed post behind a 17 KB
-- header (in fields of 1 KB) is recrypted, not refused as plaintext.
dofile(os.getenv("MT_LIB"))

local cases = {
  {"s-dupct", "2 Content%-Type fields"},
  {"s-8bit", "8%-bit byte %(0xE9%)"},
  {"s-bang", "not base64 %(0x21"},
  {"s-afterpad", "data after its '=' padding"},
  {"s-empty", "data part is empty"},
  {"s-short", "which is no sealed stream"},
  {"s-cutdata", "cut short"},
  {"s-cutctl", "cut short"},
  {"s-msgid", "malformed Message%-ID"},
}
for _, c in ipairs(cases) do
  local conn = connect()
  local fields, body = post(c[1])
  local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
  check(step == "eom", c[1] .. ": reaches end of message", step .. " " .. rname(r))
  check_code(c[1] .. ": 554 5.6.0", r, QID, "554 5%.6%.0")
  local text = last_reply(QID)
  check(text:match(c[2]) ~= nil, c[1] .. ": the reply says '" .. c[2]:gsub("%%", "") .. "'", text)
  check(changes(QID) == "", c[1] .. ": no change", changes(QID))
  mt.disconnect(conn)
end

local conn = connect()
local fields, body = post("s-padded")
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom" and r == SMFIR_CONTINUE, "17 KB of header in front: recrypted (continue)",
      rname(r) .. " at " .. step .. " " .. last_reply(QID))
check(sent(QID, "b"), "17 KB header in front: body replaced", changes(QID))
check(not last_reply(QID):match("only encrypted"), "17 KB header in front: not refused as plaintext",
      last_reply(QID))
mt.disconnect(conn)
