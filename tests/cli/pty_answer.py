# pty_answer.py ANSWER CMD...: run CMD on a pseudo-terminal (its standard
# input is a terminal), answer ANSWER to the first "[y/N]" question, copy
# what it wrote to standard output and exit with its exit status.
import os, pty, sys, select
argv = sys.argv[2:]
answer = sys.argv[1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b""
sent = False
while True:
    r, _, _ = select.select([fd], [], [], 10)
    if not r:
        break
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
    if not sent and b"[y/N]" in out:
        os.write(fd, answer + b"\n"); sent = True
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.WEXITSTATUS(st))
