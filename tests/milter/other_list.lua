-- Case 9: a post sealed for two@example.org, sent to list@example.org,
-- is refused with 550 5.7.1.
dofile(os.getenv("MT_LIB"))
local conn = connect()
local fields, body = post("other")
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom", "other list: reaches end of message", step .. " " .. rname(r))
check_code("sealed for another list: 550 5.7.1", r, QID, "550 5%.7%.1")
check(changes(QID) == "", "sealed for another list: no change", changes(QID))
-- Sent to the list it was sealed for, it is recrypted (alice only).
r, step = transaction(conn, "<alice@example.org>", {"<two@example.org>"}, fields, body)
check(step == "eom" and r == SMFIR_CONTINUE and mt.eom_check(conn, MT_RCPTADD, "<alice@example.org>") and
      not mt.eom_check(conn, MT_RCPTADD, "<bob@example.org>") and
      mt.eom_check(conn, MT_RCPTDELETE, "<two@example.org>"),
      "the same post to two@: recrypted for alice", rname(r) .. " " .. last_reply(QID))
mt.disconnect(conn)
