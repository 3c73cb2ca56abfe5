-- Case 13: a local (non-SMTP) submission. Postfix hands sendmail(1) mail
-- to the milter as a connection from localhost, 127.0.0.1, port 0, and
-- cannot refuse a single recipient there (the message would stay in its
-- queue). So a list next to another recipient is let through at RCPT and
-- the whole message refused at DATA with 550 5.5.3, which Postfix bounces
-- to the sender. Over SMTP the same recipients get 452 4.5.3 at RCPT.
dofile(os.getenv("MT_LIB"))

local function local_conn()
  local conn = mt.connect(SOCKET, 5, 0.5)
  if conn == nil then error("cannot connect to the milter at " .. SOCKET) end
  local e = mt.conninfo(conn, "localhost", "127.0.0.1")
  if e ~= nil then error("mt.conninfo: " .. e) end
  return conn
end

-- list first, then a Cc
local conn = local_conn()
mailfrom(conn, "<alice@example.org>")
local r1 = rcptto(conn, "<list@example.org>")
local r2 = rcptto(conn, "<carol@example.net>")
check(r1 == SMFIR_CONTINUE and r2 == SMFIR_CONTINUE, "local: list then Cc, both let through at RCPT",
      rname(r1) .. " " .. rname(r2) .. " " .. last_reply(QID))
local r = data(conn)
check_code("local: list then Cc, refused at DATA with 550 5.5.3", r, QID, "550 5%.5%.3")
check(last_reply(QID):match("encrypted list") ~= nil, "local: the reply names the list problem",
      last_reply(QID))
mt.abort(conn)

-- a Cc first, then the list
mailfrom(conn, "<alice@example.org>")
rcptto(conn, "<carol@example.net>")
r = rcptto(conn, "<list@example.org>")
check(r == SMFIR_CONTINUE, "local: Cc then list, let through at RCPT", rname(r))
check_code("local: Cc then list, refused at DATA", data(conn), QID, "550 5%.5%.3")
mt.abort(conn)

-- a receipt address: refused at DATA with its own 550 5.7.1
mailfrom(conn, "<alice@example.org>")
r = rcptto(conn, "<x@receipt.example.net>")
check(r == SMFIR_CONTINUE, "local: receipt address let through at RCPT", rname(r))
check_code("local: receipt address, refused at DATA with 550 5.7.1", data(conn), QID, "550 5%.7%.1")
mt.abort(conn)

-- ordinary local mail is accepted at DATA, untouched
mailfrom(conn, "<alice@example.org>")
rcptto(conn, "<carol@example.net>")
r = data(conn)
check(r == SMFIR_ACCEPT, "local: ordinary mail accepted at DATA", rname(r))
mt.disconnect(conn)

-- over SMTP: 452 at RCPT as before
conn = connect()
mailfrom(conn, "<alice@example.org>")
rcptto(conn, "<list@example.org>")
r = rcptto(conn, "<carol@example.net>")
check_code("SMTP: list then Cc, 452 4.5.3 at RCPT", r, QID, "452 4%.5%.3")
mt.disconnect(conn)
