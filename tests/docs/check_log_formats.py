#!/usr/bin/env python3
"""Check the documented log formats against examples and real log lines.

docs/admin-guide.md section 10 ("Logs") holds the grammar of the log lines
of recrypt-milter and recrypt-fanout (a fenced ```abnf block: one
production per line kind, named "...-line") and the level of each kind and
verdict (the table headed "| line | verdict | level |"). This program

  1. reads that grammar and turns every production into a regular
     expression (a small subset of ABNF, RFC 5234: rule names, "literals"
     (case-sensitive here), %xHH and %xHH-HH, / alternatives, ( ) groups,
     [ ] options, n*m repetitions; the core rules below);
  2. checks every example line of section 10 and of the man pages
     recrypt-milter(8) and recrypt-fanout(8) (lines that start with
     "recrypt-milter[PID]: " or "recrypt-fanout[PID]: ") against them, and
     that every line kind has at least one example in the guide, and that
     each example with a field "bogus=1" inserted no longer matches;
  3. with --log FILE, checks every line the daemons wrote (Syslog no:
     "TIME PROGRAM LEVEL: TEXT") the same way, and the line's level against
     the table; --expect KIND[:VERDICT] (repeatable, or comma-separated)
     says which kinds and verdicts must have been seen among those lines.

A line that carries a structured marker (" verdict=", "counters:",
" timing:", " copy=", "protocol=") must match one of the structured productions; any
other line is a note-line or daemon-line (free text). So a field added to
a verdict line without the grammar knowing it fails the check.

Exit 0 when everything matches, 1 with the reasons otherwise, 2 on usage
or a grammar the program cannot read.
"""
import argparse
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUIDE = os.path.join(ROOT, "docs", "admin-guide.md")
MANS = [os.path.join(ROOT, "docs", "man", n) for n in ("recrypt-milter.8", "recrypt-fanout.8")]

CORE = {
    "ALPHA": "[A-Za-z]",
    "DIGIT": "[0-9]",
    "HEXDIG": "[0-9A-Fa-f]",
    "DQUOTE": '"',
    "SP": " ",
    "VCHAR": "[!-~]",
}
# The free-text productions: a line with one of these markers is never one.
FREE = ("note-line", "daemon-line")
MARKERS = (" verdict=", "verdict=", "counters:", " timing:", " copy=", "protocol=")
LEVELS = ("error", "warning", "notice", "info", "debug")


class GrammarError(Exception):
    pass


# ---- ABNF subset -> regular expression ----

TOKEN = re.compile(r"""
    \s+ |
    (?P<comment>;[^\n]*) |
    (?P<string>"[^"]*") |
    (?P<hex>%x[0-9A-Fa-f]+(?:-[0-9A-Fa-f]+|(?:\.[0-9A-Fa-f]+)+)?) |
    (?P<rep>[0-9]*\*[0-9]*|[0-9]+) |
    (?P<name>[A-Za-z][A-Za-z0-9-]*) |
    (?P<punct>[()\[\]/])
""", re.X)


def tokenize(text):
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise GrammarError("cannot read %r" % text[pos:pos + 30])
        pos = m.end()
        for kind in ("string", "hex", "rep", "name", "punct"):
            if m.group(kind) is not None:
                out.append((kind, m.group(kind)))
    return out


def parse_rules(block):
    """'name = elements' rules (continuation lines indented) -> {name: tokens}."""
    rules, order, cur = {}, [], None
    for raw in block.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        m = re.match(r"([A-Za-z][A-Za-z0-9-]*)\s*(=/?)\s*(.*)$", line)
        if m and not raw[0].isspace():
            name, op, rest = m.groups()
            if op == "=":
                if name in rules:
                    raise GrammarError("rule %s defined twice" % name)
                rules[name] = rest
                order.append(name)
            else:
                if name not in rules:
                    raise GrammarError("=/ for undefined rule %s" % name)
                rules[name] += " / " + rest
            cur = name
        elif raw[0].isspace() and cur:
            rules[cur] += " " + line.strip()
        else:
            raise GrammarError("not a rule: %r" % line)
    return {n: tokenize(rules[n]) for n in order}, order


class Compiler:
    def __init__(self, rules):
        self.rules = rules
        self.cache = {}

    def rule(self, name, stack=()):
        if name in CORE:
            return CORE[name]
        if name not in self.rules:
            raise GrammarError("undefined rule %s" % name)
        if name in stack:
            raise GrammarError("recursive rule %s" % name)
        if name not in self.cache:
            toks = self.rules[name]
            rx, pos = self.alternation(toks, 0, stack + (name,))
            if pos != len(toks):
                raise GrammarError("rule %s: unexpected %r" % (name, toks[pos][1]))
            self.cache[name] = rx
        return self.cache[name]

    def alternation(self, toks, pos, stack):
        alts = []
        rx, pos = self.concatenation(toks, pos, stack)
        alts.append(rx)
        while pos < len(toks) and toks[pos] == ("punct", "/"):
            rx, pos = self.concatenation(toks, pos + 1, stack)
            alts.append(rx)
        return ("(?:%s)" % "|".join(alts) if len(alts) > 1 else alts[0]), pos

    def concatenation(self, toks, pos, stack):
        parts = []
        while pos < len(toks) and toks[pos] not in (("punct", "/"), ("punct", ")"), ("punct", "]")):
            rx, pos = self.repetition(toks, pos, stack)
            parts.append(rx)
        if not parts:
            raise GrammarError("empty alternative")
        return "".join(parts), pos

    def repetition(self, toks, pos, stack):
        rep = None
        if toks[pos][0] == "rep":
            rep = toks[pos][1]
            pos += 1
        rx, pos = self.element(toks, pos, stack)
        if rep is None:
            return rx, pos
        if "*" in rep:
            lo, hi = rep.split("*")
            q = "{%s,%s}" % (lo or "0", hi)
            q = {"{0,}": "*", "{1,}": "+"}.get(q, q)
        else:
            q = "{%s}" % rep
        return "(?:%s)%s" % (rx, q), pos

    def element(self, toks, pos, stack):
        kind, val = toks[pos]
        if kind == "name":
            return "(?:%s)" % self.rule(val, stack), pos + 1
        if kind == "string":
            return re.escape(val[1:-1]), pos + 1
        if kind == "hex":
            body = val[2:]
            if "-" in body:
                lo, hi = (int(x, 16) for x in body.split("-"))
                return "[%s-%s]" % (re.escape(chr(lo)), re.escape(chr(hi))), pos + 1
            return "".join(re.escape(chr(int(x, 16))) for x in body.split(".")), pos + 1
        if val in ("(", "["):
            close = ")" if val == "(" else "]"
            rx, pos = self.alternation(toks, pos + 1, stack)
            if pos >= len(toks) or toks[pos] != ("punct", close):
                raise GrammarError("missing %s" % close)
            return ("(?:%s)" % rx if close == ")" else "(?:%s)?" % rx), pos + 1
        raise GrammarError("unexpected %r" % val)


# ---- the documents ----

def section10(text):
    m = re.search(r"^## 10\. Logs\n(.*?)^## 11\.", text, re.S | re.M)
    if not m:
        raise GrammarError("%s: no section '## 10. Logs'" % GUIDE)
    return m.group(1)


def load_grammar(sec):
    blocks = re.findall(r"^```abnf\n(.*?)^```", sec, re.S | re.M)
    if len(blocks) != 1:
        raise GrammarError("section 10 must hold one ```abnf block (found %d)" % len(blocks))
    rules, order = parse_rules(blocks[0])
    comp = Compiler(rules)
    kinds = [n for n in order if n.endswith("-line")]
    if not kinds:
        raise GrammarError("no production named ...-line")
    return {k: re.compile("(?:%s)\\Z" % comp.rule(k)) for k in kinds}, kinds


def load_levels(sec, kinds):
    """The table '| line | verdict | level |' -> {(kind, verdict or None): {levels}}."""
    levels, in_table = {}, False
    for line in sec.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            in_table = False
            continue
        if [c.lower() for c in cells] == ["line", "verdict", "level"]:
            in_table = True
            continue
        if not in_table or set(cells[0]) <= set("-: "):
            continue
        kind = cells[0].strip("`")
        if kind not in kinds:
            raise GrammarError("level table: %s is no production" % kind)
        verdicts = re.findall(r"`([^`]+)`", cells[1]) or [None]
        lv = set(re.findall(r"`([a-z]+)`", cells[2]))
        if not lv or not lv <= set(LEVELS):
            raise GrammarError("level table: bad level in %r" % line)
        for v in verdicts:
            levels.setdefault((kind, v), set()).update(lv)
    if not levels:
        raise GrammarError("section 10 has no table '| line | verdict | level |'")
    return levels


def roff_text(line):
    for a, b in (("\\-", "-"), ("\\(dq", '"'), ("\\(aq", "'"), ("\\&", ""), ("\\e", "\\")):
        line = line.replace(a, b)
    return line


SYSLOG_EXAMPLE = re.compile(r"^(recrypt-milter|recrypt-fanout)\[[0-9]+\]: (.*)$")
STDERR_LINE = re.compile(r"^\S+ (recrypt-milter|recrypt-fanout) (error|warning|notice|info|debug): (.*)$")


def examples(path, text, roff):
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if roff:
            line = roff_text(line)
        m = SYSLOG_EXAMPLE.match(line.strip())
        if m:
            out.append(("%s:%d" % (os.path.relpath(path, ROOT), n), m.group(1), None, m.group(2)))
    return out


# ---- matching ----

def verdict_of(text):
    m = re.search(r"(?:^|[ :])verdict=([a-z-]+)", text)
    return m.group(1) if m else None


def classify(grammar, kinds, text):
    """The kind of a line's text (after 'PROGRAM[PID]: ' or the level), or None."""
    structured = any(mk in text for mk in MARKERS)
    for k in kinds:
        if k in FREE:
            continue
        if grammar[k].match(text):
            return k
    if structured:
        return None
    for k in FREE:
        if k in grammar and grammar[k].match(text):
            return k
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", action="append", default=[], help="a log file (Syslog no) to check")
    ap.add_argument("--expect", action="append", default=[],
                    help="KIND[:VERDICT] that must be among the logged lines (KIND without -line)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()

    try:
        with open(GUIDE, encoding="utf-8") as f:
            sec = section10(f.read())
        grammar, kinds = load_grammar(sec)
        levels = load_levels(sec, kinds)
    except (GrammarError, OSError) as e:
        print("check_log_formats: %s" % e, file=sys.stderr)
        return 2
    bad = []

    # The examples: the guide's section 10 and the man pages.
    ex = examples(GUIDE, sec, False)
    guide_kinds = set()
    for path in MANS:
        with open(path, encoding="utf-8") as f:
            ex += examples(path, f.read(), True)
    if not ex:
        bad.append("no example lines found")
    for where, prog, _, text in ex:
        k = classify(grammar, kinds, text)
        if k is None or k in FREE:
            bad.append("%s: example matches no documented production: %s" % (where, text))
            continue
        if where.startswith("docs/admin-guide.md"):
            guide_kinds.add(k)
    for k in kinds:
        if k not in FREE and k not in guide_kinds:
            bad.append("section 10 has no example of %s" % k)
    # The check itself: an undocumented field in any example is caught.
    for where, prog, _, text in ex:
        words = text.split(" ")
        mutant = " ".join(words[:2] + ["bogus=1"] + words[2:])
        if classify(grammar, kinds, mutant) is not None:
            bad.append("%s: an undocumented field would pass unnoticed: %s" % (where, mutant))
    if not a.quiet:
        print("# %d example lines checked against %d productions" % (len(ex), len(kinds)))

    # The real lines.
    seen, n_lines, n_other = set(), 0, 0
    for path in a.log:
        with open(path, encoding="latin-1") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                m = STDERR_LINE.match(line)
                if not m:
                    n_other += 1  # not a log line (a fatal message, another program)
                    continue
                n_lines += 1
                prog, level, text = m.groups()
                k = classify(grammar, kinds, text)
                if k is None:
                    bad.append("%s:%d: matches no documented production: %s" % (path, n, line))
                    continue
                v = verdict_of(text) if k not in FREE else None
                want = levels.get((k, v)) or levels.get((k, None))
                if want is None:
                    bad.append("%s:%d: no documented level for %s%s: %s"
                               % (path, n, k, " verdict=%s" % v if v else "", line))
                elif level not in want:
                    bad.append("%s:%d: logged at %s, documented at %s: %s"
                               % (path, n, level, "/".join(sorted(want)), line))
                seen.add(k[:-len("-line")])
                if v:
                    seen.add("%s:%s" % (k[:-len("-line")], v))
    for e in (x for item in a.expect for x in item.split(",") if x):
        if e not in seen:
            bad.append("expected %s among the logged lines, not seen (seen: %s)"
                       % (e, " ".join(sorted(seen)) or "nothing"))
    if a.log and not a.quiet:
        print("# %d log lines checked (%d other lines ignored) in %d files; seen: %s"
              % (n_lines, n_other, len(a.log), " ".join(sorted(seen))))
    for b in bad:
        print("FAIL - %s" % b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
