-- Case 2: several messages on one connection. Two sealed posts in a row
-- are both recrypted; an ordinary message (to nobody@example.org) between
-- them is accepted at DATA, before any header, untouched. The first post's body
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
-- The negotiation: the milter leaves out HELO and unknown commands and
-- asks for no reply to connect, MAIL, headers and end of headers, of what
-- the MTA (miltertest) offered.
local offered, asked
for _, l in ipairs(packets("NOQID")) do
  offered = tonumber(l:match("^o offered .* steps=0x(%x+)") or "", 16) or offered
  asked = tonumber(l:match("^O .* steps=0x(%x+)") or "", 16) or asked
end
local want = 0x2 | 0x100 | 0x1000 | 0x4000 | 0x80 | 0x40000 -- NOHELO NOUNKNOWN NR_CONN NR_MAIL NR_HDR NR_EOH
check(offered ~= nil and asked ~= nil and asked == (want & offered) and asked & 0x80 ~= 0,
      "negotiation: the steps asked for are the no-reply ones the MTA offers",
      string.format("offered 0x%x, asked 0x%x", offered or -1, asked or -1))
-- Replies in the first post: RCPT, DATA, each body chunk and end of
-- message; none for MAIL, the headers and end of headers.
local n_cont = 0
for _, l in ipairs(packets(q1)) do
  if l:match("^c%s*$") then n_cont = n_cont + 1 end
end
local chunks = (#body + 60) // 61
check(n_cont == 2 + chunks + 1, "first post: no reply to MAIL and its " .. #fields .. " header fields",
      n_cont .. " continue replies for " .. chunks .. " body chunks")
check(mt.eom_check(conn, MT_RCPTDELETE, "<list@example.org>") and
      mt.eom_check(conn, MT_RCPTADD, "<alice@example.org>") and
      mt.eom_check(conn, MT_RCPTADD, "<bob@example.org>") and mt.eom_check(conn, MT_BODYCHANGE) and
      mt.eom_check(conn, MT_HDRADD, "Recrypt-Processed"), "first post: recrypted", changes(q1))

-- The ordinary message: the milter lets it go at DATA.
fields, body = parse_message(slurp(DIR .. "/ordinary.txt"))
r = mailfrom(conn, "<alice@example.org>")
local q2 = QID
check(r == SMFIR_CONTINUE, "ordinary message: MAIL continues", rname(r))
r = rcptto(conn, "<nobody@example.org>")
check(r == SMFIR_CONTINUE, "ordinary message: RCPT nobody@ continues", rname(r))
r = data(conn)
check(r == SMFIR_ACCEPT, "ordinary message: accepted at DATA", rname(r))
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
