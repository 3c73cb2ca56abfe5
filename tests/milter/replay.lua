-- Case 8: the same sealed post twice (an MTA retry, or a replay): the
-- first is recrypted, the second accepted and discarded, never delivered
-- twice; also on a new connection.
dofile(os.getenv("MT_LIB"))
local fields, body = post("replay")
local conn = connect()
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom" and r == SMFIR_CONTINUE and mt.eom_check(conn, MT_BODYCHANGE),
      "first time: recrypted", rname(r) .. " at " .. step .. " " .. last_reply(QID))
r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom" and r == SMFIR_DISCARD, "second time, same connection: discarded",
      rname(r) .. " at " .. step .. " " .. last_reply(QID))
check(changes(QID) == "", "second time: no change", changes(QID))
mt.disconnect(conn)
conn = connect()
r, step = transaction(conn, "<bob@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom" and r == SMFIR_DISCARD, "third time, new connection: discarded",
      rname(r) .. " at " .. step .. " " .. last_reply(QID))
check(changes(QID) == "", "third time: no change", changes(QID))
mt.disconnect(conn)
