# FORMAT.md precision items of issue 13 through the real client: each
# decision is quoted from the spec.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev eve
enrol list alice@example.org alice
pin list eve # pinned explicitly (FORMAT §4 "Pinning"): the refusal below is the stanza's
# Eve's W is right in every respect (list, epoch, A, k) but the membership
# certificate inside it is signed by a stranger's key.
"$RC_HARNESS" enrol list eve@example.org "$(cat eve.pub)" --at $(( $(date +%s) - 2 * 86400 )) --bad-cert
DATE=$(LC_ALL=C date -u -R)
{ printf 'From: alice@example.org\nTo: list@example.org\nSubject: s\nDate: %s\nMessage-ID: <e1@example.org>\n\nhello\n' "$DATE"; } >m.eml
post list alice m.eml d.eml

# FORMAT §8: "The device finds its stanza by trial: the first stanza whose W
# opens with its key and passes every check of rc_wrap_open (§6), ...
# carries a membership certificate that verifies with the statement's
# signer_pk ... If some W opened but none passed: RC_E_AUTH (recrypt exit
# status 65 ...); if none opened: RC_E_NOT_FOR_US (exit status 67)."
expect_fail "a stanza whose certificate does not verify is refused (65)" 65 \
  "fails its checks \(the membership certificate inside it does not verify with the list signing key\)" \
  dev eve open --list-key list.key <d.eml
[ ! -e dev-eve/lists/list@example.org/cert-1 ] && pass "the bad certificate is not stored" ||
  failed "the bad certificate was stored"
# The same post opens for Alice, whose stanza is sound.
dev alice open <d.eml >o.eml 2>/dev/null || true
same_inner "the post opens for a device with a sound stanza" m.eml o.eml
# A device with no stanza at all: 67.
newdev frank
pin list frank
expect_fail "no stanza for this device: 67" 67 "none of the" dev frank open --list-key list.key <d.eml
finish
