-- Case 12: a reload applies to the next message only. A post is half
-- through its body when MaxMessageSize is lowered below its size and the
-- milter reloaded (SIGUSR1): that post is still recrypted with the limit it
-- started under; the next one gets 552 5.3.4. MT_CONF is the milter's
-- configuration, MT_MILTER_PID its process, MT_MILTER_LOG its log.
dofile(os.getenv("MT_LIB"))

local conf, pid, log = os.getenv("MT_CONF"), os.getenv("MT_MILTER_PID"), os.getenv("MT_MILTER_LOG")
local function reloads() return select(2, slurp(log):gsub("configuration reloaded", "")) end
local function reload_with(extra)
  local before = reloads()
  local f = assert(io.open(conf, "a"))
  f:write(extra .. "\n")
  f:close()
  os.execute("kill -USR1 " .. pid)
  for _ = 1, 100 do
    if reloads() > before then return true end
    os.execute("sleep 0.1")
  end
  return false
end

local fields, body = post("reload1")
check(#body > 1200, "the post is bigger than the lowered limit (1024)", #body .. " bytes")
local conn = connect()
check(mailfrom(conn, "<alice@example.org>") == SMFIR_CONTINUE and
      rcptto(conn, "<list@example.org>") == SMFIR_CONTINUE and data(conn) == SMFIR_CONTINUE and
      send_headers(conn, fields) == SMFIR_CONTINUE and
      send_body(conn, body:sub(1, 200)) == SMFIR_CONTINUE, "first post: started under the old limit")
local q1 = QID
check(reload_with("MaxMessageSize 1024"), "reloaded with MaxMessageSize 1024 mid-message")
local r = send_body(conn, body:sub(201))
check(r == SMFIR_CONTINUE, "first post: the rest of its body is taken (old limit)",
      rname(r) .. " " .. last_reply(q1))
r = eom(conn)
check(r == SMFIR_CONTINUE and mt.eom_check(conn, MT_BODYCHANGE), "first post: recrypted",
      rname(r) .. " " .. last_reply(q1))

fields, body = post("reload2")
r = mailfrom(conn, "<alice@example.org>")
r = rcptto(conn, "<list@example.org>")
r = data(conn)
r = send_headers(conn, fields)
r = send_body(conn, body)
check_code("the next post: 552 5.3.4 under the new limit", r, QID, "552 5%.3%.4")
mt.disconnect(conn)
