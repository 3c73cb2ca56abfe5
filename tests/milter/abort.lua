-- Case 3: an abort can come between any two callbacks; the next
-- transaction on the same connection must work normally (a recrypted post).
-- Aborts after RCPT, after the headers, after part of the body.
dofile(os.getenv("MT_LIB"))

local conn = connect()

-- recrypt(NAME, WHAT): a whole transaction with post NAME must be recrypted.
local function recrypt(name, what)
  local fields, body = post(name)
  local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
  check(step == "eom" and r == SMFIR_CONTINUE and mt.eom_check(conn, MT_BODYCHANGE) and
        mt.eom_check(conn, MT_RCPTDELETE, "<list@example.org>") and
        mt.eom_check(conn, MT_RCPTADD, "<alice@example.org>") and
        mt.eom_check(conn, MT_RCPTADD, "<bob@example.org>"),
        what .. ": the next post on the connection is recrypted",
        rname(r) .. " at " .. step .. " " .. last_reply(QID) .. " [" .. changes(QID) .. "]")
end

-- After RCPT list@.
local fields, body = post("abort1")
check(mailfrom(conn, "<alice@example.org>") == SMFIR_CONTINUE and
      rcptto(conn, "<list@example.org>") == SMFIR_CONTINUE, "abort after RCPT: list@ accepted first")
local e = mt.abort(conn)
check(e == nil, "abort after RCPT sent", e)
recrypt("abort1", "abort after RCPT")

-- After the headers (end of headers).
fields, body = post("abort2")
check(mailfrom(conn, "<alice@example.org>") == SMFIR_CONTINUE and
      rcptto(conn, "<list@example.org>") == SMFIR_CONTINUE and
      send_headers(conn, fields) == SMFIR_CONTINUE, "abort after headers: headers accepted first")
e = mt.abort(conn)
check(e == nil, "abort after headers sent", e)
recrypt("abort2", "abort after headers")

-- After part of the body.
fields, body = post("abort3")
check(mailfrom(conn, "<alice@example.org>") == SMFIR_CONTINUE and
      rcptto(conn, "<list@example.org>") == SMFIR_CONTINUE and
      send_headers(conn, fields) == SMFIR_CONTINUE and
      send_body(conn, body:sub(1, #body // 2)) == SMFIR_CONTINUE,
      "abort in the body: half the body accepted first")
e = mt.abort(conn)
check(e == nil, "abort in the body sent", e)
-- An aborted post was never delivered: sent again in full, it is
-- recrypted (not taken for a replay).
recrypt("abort3", "abort in the body")

-- Abort after an ordinary recipient, then a post to the list: the
-- ordinary recipient of the aborted transaction must not count.
check(mailfrom(conn, "<alice@example.org>") == SMFIR_CONTINUE and
      rcptto(conn, "<nobody@example.org>") == SMFIR_CONTINUE, "abort after an ordinary RCPT: accepted first")
mt.abort(conn)
local r = mailfrom(conn, "<alice@example.org>")
r = rcptto(conn, "<list@example.org>")
check(r == SMFIR_CONTINUE, "after that abort, list@ is accepted (no 452)", rname(r) .. " " .. last_reply(QID))
mt.abort(conn)
mt.disconnect(conn)

-- A connection closed in the middle of a transaction (no abort).
conn = connect()
fields, body = post("abort1")
mailfrom(conn, "<alice@example.org>")
rcptto(conn, "<list@example.org>")
send_headers(conn, fields)
send_body(conn, body:sub(1, 100))
mt.disconnect(conn, false)
conn = connect()
r = mailfrom(conn, "<alice@example.org>")
check(r == SMFIR_CONTINUE, "after a connection dropped mid-body, a new connection works", rname(r))
mt.disconnect(conn)
