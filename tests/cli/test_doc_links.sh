# Issue 13: "FORMAT.md cites CRYPTO.md, which is not in the repository".
# Every `NAME.md` a document of docs/ names must exist in docs/ (or be the
# README at the top); the scheme is docs/SCHEME.md.
docs=$(cd "$(dirname "$0")/../../docs" && pwd)
source "$(dirname "$0")/lib.sh"
[ -f "$docs/SCHEME.md" ] && pass "docs/SCHEME.md exists" || failed "docs/SCHEME.md is missing"
for f in "$docs"/*.md; do
  for ref in $(grep -oE '\b[A-Za-z][A-Za-z0-9_-]*\.md\b' "$f" | sort -u); do
    if [ -f "$docs/$ref" ] || [ -f "$docs/../$ref" ]; then continue; fi
    # The old name is allowed only where SCHEME.md says where it came from.
    if [ "$ref" = CRYPTO.md ] && [ "$(basename "$f")" = SCHEME.md ]; then continue; fi
    failed "$(basename "$f") cites $ref, which is not in the repository"
  done
done
grep -q 'SCHEME.md' "$docs/FORMAT.md" && grep -q 'SCHEME.md' "$docs/REQUESTS.md" &&
  pass "FORMAT.md and REQUESTS.md cite SCHEME.md" || failed "FORMAT.md or REQUESTS.md does not cite SCHEME.md"
[ "$fails" -eq 0 ] && pass "every document cited by docs/*.md exists"
finish
