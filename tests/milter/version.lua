-- Case 10: a recrypt message with an unknown version ("Version: 2" in the
-- control part) is malformed: 554 5.6.0.
dofile(os.getenv("MT_LIB"))
local conn = connect()
local fields, body = post("garbled")
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom", "version 2: reaches end of message", step .. " " .. rname(r))
check_code("version 2: 554 5.6.0", r, QID, "554 5%.6%.0")
check(changes(QID) == "", "version 2: no change", changes(QID))
mt.disconnect(conn)
