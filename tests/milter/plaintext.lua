-- Case 7: a plaintext post to a protected list gets 550 5.7.1 (the
-- default PlaintextPolicy reject), with the list key in the reply.
dofile(os.getenv("MT_LIB"))
local conn = connect()
local fields, body = parse_message(slurp(DIR .. "/plaintext.txt"))
local r, step = transaction(conn, "<alice@example.org>", {"<list@example.org>"}, fields, body)
check(step == "eom", "plaintext: reaches end of message", step .. " " .. rname(r))
check_code("plaintext post: 550 5.7.1", r, QID, "550[- ]5%.7%.1")
local text = last_reply(QID)
check(text:find("recrypt seal", 1, true) ~= nil, "plaintext: the reply says to seal the post", text)
local key = slurp(DIR .. "/list.key"):gsub("%s", "")
check(text:gsub("[%s/]", ""):find(key, 1, true) ~= nil, "plaintext: the reply gives the current list key")
check(changes(QID) == "", "plaintext: no change", changes(QID))
mt.disconnect(conn)
