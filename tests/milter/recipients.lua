-- Case 4: a protected list must be the only recipient of its transaction:
-- any other recipient after it, or the list after another recipient, gets
-- 452 4.5.3 at RCPT.
dofile(os.getenv("MT_LIB"))

local conn = connect()

-- pair(FIRST, SECOND, WHAT): FIRST accepted, SECOND gets 452 4.5.3.
local function pair(first, second, what)
  mailfrom(conn, "<alice@example.org>")
  local r = rcptto(conn, first)
  check(r == SMFIR_CONTINUE, what .. ": " .. first .. " accepted", rname(r) .. " " .. last_reply(QID))
  r = rcptto(conn, second)
  check_code(what .. ": " .. second .. " gets 452 4.5.3", r, QID, "452 4%.5%.3")
  mt.abort(conn)
end

pair("<list@example.org>", "<nobody@example.org>", "list then ordinary")
pair("<nobody@example.org>", "<list@example.org>", "ordinary then list")
pair("<list@example.org>", "<two@example.org>", "two protected lists")
pair("<list@example.org>", "<list@example.org>", "the list twice")
pair("<list@example.org>", "<Nobody@Example.org>", "list then ordinary (capitals)")

-- Still an ordinary transaction works afterwards on the same connection.
mailfrom(conn, "<alice@example.org>")
local r = rcptto(conn, "<nobody@example.org>")
local r2 = rcptto(conn, "<other@example.org>")
check(r == SMFIR_CONTINUE and r2 == SMFIR_CONTINUE, "two ordinary recipients accepted",
      rname(r) .. " " .. rname(r2))
mt.abort(conn)

-- The rejected recipient does not stay: after 452, the list alone goes on
-- to end of headers normally (the MTA carries on with the accepted one).
mailfrom(conn, "<alice@example.org>")
rcptto(conn, "<list@example.org>")
rcptto(conn, "<nobody@example.org>")
local fields = post("conn1")
r = send_headers(conn, fields)
check(r == SMFIR_CONTINUE, "after the 452, the list transaction goes on", rname(r))
mt.abort(conn)
mt.disconnect(conn)
