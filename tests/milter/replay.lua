-- Case 8: the same sealed post again (an MTA retry, or a replay). The
-- milter cannot see whether the MTA committed a post, so it adds a
-- delivery receipt recipient (TOKEN@receipt.example.net) and keeps the
-- post pending until the MTA delivers that receipt (recrypt-milter -r):
--   - before the receipt, the same post is recrypted again (a retry after
--     a failure must go through), for the same recipients;
--   - a forged receipt (right E, wrong tag) or a malformed one changes
--     nothing;
--   - after the receipt, it is accepted and discarded, never delivered
--     twice, on the same connection and on a new one;
--   - a client cannot name a receipt address as a recipient.
dofile(os.getenv("MT_LIB"))
local RECEIPT = os.getenv("MT_RECEIPT_CMD") or error("MT_RECEIPT_CMD is not set")

-- The receipt recipient the milter added in transaction QID: the token.
local function receipt_token(qid)
  for _, l in ipairs(packets(qid)) do
    local t = l:match("^[+2] <(%x+)@receipt%.example%.net>")
    if t then return t end
  end
  return nil
end
-- recrypt-milter -r ADDRESS, as the MTA's receipt transport runs it: exit code.
local function run_receipt(address)
  local okr, how, code = os.execute(RECEIPT .. " -r '" .. address .. "' -Q " .. QID .. " </dev/null")
  if how == "exit" then return code end
  return -1
end
local function recrypted(r, step, what)
  return check(step == "eom" and r == SMFIR_CONTINUE and mt.eom_check(conn, MT_BODYCHANGE) and
               mt.eom_check(conn, MT_RCPTADD, "<alice@example.org>") and
               mt.eom_check(conn, MT_RCPTADD, "<bob@example.org>"),
               what, rname(r) .. " at " .. step .. " " .. last_reply(QID) .. " [" .. changes(QID) .. "]")
end

local fields, body = post("replay")
conn = connect()
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
recrypted(r, step, "first time: recrypted")
local token = receipt_token(QID)
check(token ~= nil and #token == 48, "first time: a receipt recipient <48 hex digits@receipt.example.net> added",
      changes(QID))
token = token or ("0"):rep(48)

-- No receipt yet: the MTA may not have committed it. Processed again.
r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
recrypted(r, step, "again before the receipt (a retry): recrypted again, same recipients")
check(receipt_token(QID) == token, "the retry carries the same receipt token", tostring(receipt_token(QID)))

-- A forged receipt: E's prefix with another tag. Accepted (exit 0, as for
-- a receipt the cache no longer knows), but the post stays pending.
local forged = token:sub(1, 24) .. (token:sub(25, 25) == "0" and "1" or "0") .. token:sub(26)
check(run_receipt(forged .. "@receipt.example.net") == 0, "a forged receipt: exit 0 (nothing to do)")
check(run_receipt("nothex@receipt.example.net") == 65, "a malformed receipt address: exit 65 (EX_DATAERR)")
r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
recrypted(r, step, "after a forged receipt: still pending, recrypted again")

-- The MTA delivers the receipt: from now on the post is delivered.
check(run_receipt(token .. "@receipt.example.net") == 0, "the receipt: exit 0")
check(run_receipt(token .. "@receipt.example.net") == 0, "the same receipt again: exit 0")
r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom" and r == SMFIR_DISCARD, "after the receipt, same connection: discarded",
      rname(r) .. " at " .. step .. " " .. last_reply(QID))
check(changes(QID) == "", "after the receipt: no change", changes(QID))
mt.disconnect(conn)
conn = connect()
r, step = transaction(conn, "<bob@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom" and r == SMFIR_DISCARD, "after the receipt, new connection: discarded",
      rname(r) .. " at " .. step .. " " .. last_reply(QID))
check(changes(QID) == "", "new connection: no change", changes(QID))

-- A receipt address is not a recipient an SMTP client may name.
check(mailfrom(conn, "<alice@example.org>") == SMFIR_CONTINUE, "MAIL for the receipt-address check")
r = rcptto(conn, "<" .. token .. "@Receipt.Example.NET>")
check_code("RCPT to a receipt address: 550 5.7.1", r, QID, "550 5%.7%.1")
mt.abort(conn)
mt.disconnect(conn)
