-- Case 6: a post to a list with no active member gets 550 5.2.1.
dofile(os.getenv("MT_LIB"))
local conn = connect()
local fields, body = post("noone")
local r, step = transaction(conn, "<alice@example.org>", {"<empty@example.org>"}, fields, body)
check(step == "eom", "no member: reaches end of message", step .. " " .. rname(r) .. " " .. last_reply(QID))
check_code("no active member: 550 5.2.1", r, QID, "550 5%.2%.1")
check(changes(QID) == "", "no active member: no change", changes(QID))
mt.disconnect(conn)
