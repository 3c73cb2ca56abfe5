-- Case 2: several messages on one connection. Two sealed posts in a row
-- are both recrypted; an ordinary message (to nobody@example.org) between
-- them is accepted at end of headers, untouched. The first post's body
-- comes in 61-byte chunks. The second post's list recipient is given in
-- another case (the deletion names it as given), and it carries list
-- header fields of its own, which the milter removes.
dofile(os.getenv("MT_LIB"))

local conn = connect()

local fields, body = post("conn1")
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body, 61)
local q1 = QID
check(step == "eom" and r == SMFIR_CONTINUE, "first post: continue at end of message",
      rname(r) .. " at " .. step .. " " .. last_reply(q1))
check(mt.eom_check(conn, MT_RCPTDELETE, "<list@example.org>") and
      mt.eom_check(conn, MT_RCPTADD, "<alice@example.org>") and
      mt.eom_check(conn, MT_RCPTADD, "<bob@example.org>") and mt.eom_check(conn, MT_BODYCHANGE) and
      mt.eom_check(conn, MT_HDRADD, "Recrypt-Processed"), "first post: recrypted", changes(q1))

-- The ordinary message: the milter lets it go at end of headers.
fields, body = parse_message(slurp(DIR .. "/ordinary.txt"))
r = mailfrom(conn, "<alice@example.org>")
local q2 = QID
check(r == SMFIR_CONTINUE, "ordinary message: MAIL continues", rname(r))
r = rcptto(conn, "<nobody@example.org>")
check(r == SMFIR_CONTINUE, "ordinary message: RCPT nobody@ continues", rname(r))
r = send_headers(conn, fields)
check(r == SMFIR_ACCEPT, "ordinary message: accepted at end of headers", rname(r))
check(changes(q2) == "" and n_replies(q2) == 0, "ordinary message: no change, no reply",
      changes(q2) .. " " .. last_reply(q2))

fields, body = post("conn2")
table.insert(fields, 2, {"List-Id", "<evil.example.net>"})
fields[#fields + 1] = {"Recrypt-List-Key", "recrypt1.listkey.forged"}
fields[#fields + 1] = {"Recrypt-Processed", string.rep("x", 43)}
r, step = transaction(conn, "<alice@example.org>", {"<LIST@Example.ORG>"}, fields, body)
local q3 = QID
check(step == "eom" and r == SMFIR_CONTINUE, "second post (list in capitals): continue at end of message",
      rname(r) .. " at " .. step .. " " .. last_reply(q3))
check(mt.eom_check(conn, MT_RCPTDELETE, "<LIST@Example.ORG>"),
      "second post: the list recipient deleted as it was given", changes(q3))
check(mt.eom_check(conn, MT_RCPTADD, "<alice@example.org>") and
      mt.eom_check(conn, MT_RCPTADD, "<bob@example.org>") and mt.eom_check(conn, MT_BODYCHANGE) and
      mt.eom_check(conn, MT_HDRADD, "List-Id", "<list.example.org>"), "second post: recrypted", changes(q3))
check(mt.eom_check(conn, MT_HDRDELETE, "List-Id") and mt.eom_check(conn, MT_HDRDELETE, "Recrypt-List-Key") and
      mt.eom_check(conn, MT_HDRDELETE, "Recrypt-Processed"),
      "second post: its own List-Id, Recrypt-List-Key, Recrypt-Processed removed", changes(q3))
check(mt.getheader(conn, "Recrypt-List-Key", 0) ~= "recrypt1.listkey.forged" and
      mt.getheader(conn, "List-Id", 0) == "<list.example.org>", "second post: the milter's own values added")
local b1, b3 = new_body(q1) or "", new_body(q3) or ""
check(#b1 > 0 and #b3 > 0 and b1 ~= b3, "the two posts got their own new bodies")
mt.disconnect(conn)
