/*
 * test_vectors.c - the test vectors of docs/FORMAT.md ("Test vectors").
 *
 * Every value is computed from the fixed inputs below with the deterministic
 * internal functions (rc_entry_create_det, rc_sealer_new_det) and the public
 * API, and compared byte for byte with the hex constants, which are the same
 * as in FORMAT.md. Where a layout is documented, the test also rebuilds the
 * bytes from the layout with plain libsodium calls, so that FORMAT.md (not
 * only the library) is what is being checked.
 *
 * On a mismatch the computed value is printed: if a change to the format is
 * intended, update FORMAT.md and this file together.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "internal.h"
#include "header.h"

/* ---- fixed inputs (FORMAT.md "Test vectors: inputs") ---- */

#define IN_LIST_ADDRESS "Friends@Example.ORG"
#define IN_LIST_CANON "friends@example.org"
#define IN_EPOCH 7
#define IN_NOT_BEFORE 1690000000ULL
#define IN_NOT_AFTER 1800000000ULL
#define IN_MEMBER "Alice@Example.org"
#define IN_MEMBER_CANON "alice@example.org"
#define IN_ENROLLED_AT 1695000000ULL
#define IN_DATE 1700000000ULL
#define IN_MESSAGE_ID "vector-1@example.org"

/* Scalars are little-endian; all below 2^252, hence canonical. */
static const char HEX_a[] = "1111111111111111111111111111111111111111111111111111111111111101";
static const char HEX_k[] = "2222222222222222222222222222222222222222222222222222222222222202";
static const char HEX_t[] = "3333333333333333333333333333333333333333333333333333333333333303";
static const char HEX_u[] = "4444444444444444444444444444444444444444444444444444444444444404";
static const char HEX_LIST_SIGN_SEED[] =
    "5151515151515151515151515151515151515151515151515151515151515151";
static const char HEX_DEV_WRAP_SK[] =
    "6161616161616161616161616161616161616161616161616161616161616161";
static const char HEX_DEV_SIGN_SEED[] =
    "6262626262626262626262626262626262626262626262626262626262626262";
static const char HEX_SERVICE_SK[] =
    "7171717171717171717171717171717171717171717171717171717171717171";
static const char HEX_OWNER_BOX_SK[] =
    "8181818181818181818181818181818181818181818181818181818181818181";
static const char HEX_OWNER_SIGN_SEED[] =
    "8282828282828282828282828282828282828282828282828282828282828282";
static const char HEX_STREAM_HEADER[] = "000102030405060708090a0b0c0d0e0f1011121314151617";

/* The short inner message (CRLF line endings). */
static const char IN_MESSAGE[] = "From: Alice <alice@example.org>\r\n"
                                 "To: friends@example.org\r\n"
                                 "Subject: test vector\r\n"
                                 "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                                 "Message-ID: <vector-1@example.org>\r\n"
                                 "\r\n"
                                 "Hello, list.\r\n";
/* The long message: LONG_LEN bytes, byte i = i mod 251. */
#define LONG_LEN 100000

/* ---- expected values (FORMAT.md "Test vectors: outputs") ---- */

#define EXP_FP_LIST_SIGNER "MACX-X7WB-UMNK-FORA-GPYG-65PG-UGM6"
#define EXP_FP_DEVICE_SIGNER "MA5D-5HFR-PFZS-2IJ7-3S2H-LJPC-3M2E"
#define EXP_LIST_ID "6024990516724decbf96c49f3e2c7a6018b3e4a06098510d901f2434fd395151"
#define EXP_A "6a0c6412656065a30790208b8acc969927edc8a0144d1d0d372223a1b8a5e87a"
#define EXP_LIST_SIGN_PK "c050c5637a44fa8629fff3cccce2300cb362a63d99d95fc54145266f4332445a"
#define EXP_DEV_WRAP_PK "4049502db92ca2342c3f92dac5d6de7c85db5df5407a5b4996ce39f2efb7e827"
#define EXP_DEV_SIGN_PK "2df04125f0015afb47ce853aef8772094ff9498c14cb1b9e12973c2927da0fa6"
#define EXP_KS_DEVICE \
    "recrypt1.device.QElQLbksojQsP5LaxdbefIXbXfVAeltJls458u-36Cct8EEl" \
    "8AFa-0fOhTrvh3IJT_lJjBTLG54SlzwpJ9oPph2XK5I"
#define EXP_KS_DEVICE_SECRET \
    "recrypt1.device-secret.YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhY" \
    "WFiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYqMxrZo"
#define EXP_KS_SERVICE \
    "recrypt1.service.q08ZeZj8xWzG7WjB2TGvm7Ui7AB0PhgfczCRXfSqMXYY43w" \
    "q"
#define EXP_KS_SERVICE_SECRET \
    "recrypt1.service-secret.cXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFx" \
    "cXHkqtVr"
#define EXP_KS_OWNER \
    "recrypt1.owner.-gE0epkeBK4PGm2B2yml6k7rWWX1d6ye-0TnsfL7sCgA-Bqw6" \
    "w4Y3bXiR9OPJcejUsOfx3p0yz9znTCfae5IeEe_1f0"
#define EXP_KS_OWNER_SECRET \
    "recrypt1.owner-secret.gYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY" \
    "GCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoq-188"
#define EXP_KS_LIST_SECRET \
    "recrypt1.list-secret.ARNmcmllbmRzQGV4YW1wbGUub3JnAAAAAAAAAAcRERE" \
    "RERERERERERERERERERERERERERERERERERERAVFRUVFRUVFRUVFRUVFRUVFRUVF" \
    "RUVFRUVFRUVFRUVFRJXtXYQ"
#define EXP_KS_LISTKEY \
    "recrypt1.listkey.ARNmcmllbmRzQGV4YW1wbGUub3JnAAAAAAAAAAdqDGQSZWB" \
    "loweQIIuKzJaZJ-3IoBRNHQ03IiOhuKXoegAAAABku1qAAAAAAGtJ0gDAUMVjekT" \
    "6hin_88zM4jAMs2KmPZnZX8VBRSZvQzJEWi09vR3kN1OrSRFaTb80SzH3rR7350N" \
    "8QXyxtJ9DSkGwHfLh6OJw3Z1DTwyyT_wRfGTwbJ_TMabZM8dnTz-TFALAAQsR"
#define EXP_KS_DEVICE_CHECK "1d972b92"
#define EXP_STATEMENT \
    "0113667269656e6473406578616d706c652e6f726700000000000000076a0c64" \
    "12656065a30790208b8acc969927edc8a0144d1d0d372223a1b8a5e87a000000" \
    "0064bb5a80000000006b49d200c050c5637a44fa8629fff3cccce2300cb362a6" \
    "3d99d95fc54145266f4332445a2d3dbd1de43753ab49115a4dbf344b31f7ad1e" \
    "f7e7437c417cb1b49f434a41b01df2e1e8e270dd9d434f0cb24ffc117c64f06c" \
    "9fd331a6d933c7674f3f931402"
#define EXP_CERT \
    "016024990516724decbf96c49f3e2c7a6018b3e4a06098510d901f2434fd3951" \
    "51000000000000000711616c696365406578616d706c652e6f72672df04125f0" \
    "015afb47ce853aef8772094ff9498c14cb1b9e12973c2927da0fa6c9a6f8501e" \
    "e6f8b1272990af79f93171f6f64f6fec6f82665f6fea71847eba557f84ec5e7a" \
    "267ffd022994247bf6c430339cfee520df1d307c18c1dc76552e09"
#define EXP_r "dcc2e44b09520147c58be691cde8cd03efeeeeeeeeeeeeeeeeeeeeeeeeeeee0e"
#define EXP_K_MEMBER "363bd158068fabdb91f06f38c93eed0fe180eb06446c594babc9a146465dc862"
#define EXP_W_PLAIN \
    "726563727970742f7772617000000000016024990516724decbf96c49f3e2c7a" \
    "6018b3e4a06098510d901f2434fd39515100000000000000076a0c6412656065" \
    "a30790208b8acc969927edc8a0144d1d0d372223a1b8a5e87a4049502db92ca2" \
    "342c3f92dac5d6de7c85db5df5407a5b4996ce39f2efb7e82722222222222222" \
    "22222222222222222222222222222222222222222222222202009b0160249905" \
    "16724decbf96c49f3e2c7a6018b3e4a06098510d901f2434fd39515100000000" \
    "0000000711616c696365406578616d706c652e6f72672df04125f0015afb47ce" \
    "853aef8772094ff9498c14cb1b9e12973c2927da0fa6c9a6f8501ee6f8b12729" \
    "90af79f93171f6f64f6fec6f82665f6fea71847eba557f84ec5e7a267ffd0229" \
    "94247bf6c430339cfee520df1d307c18c1dc76552e09"
#define EXP_W_FIXED \
    "e66f122cc8d38efa908c2bc98b45c6b7c8ee1bb1e8bcb50e711d81926f18000d" \
    "1d495aa92a39cf3e3741391b11bd2ee0ff509f0cceb2ade6792df85c18fd4213" \
    "90c81e685bc1f0fee2e1fb18fe113a5dea79d313c95bd8c28eeb9d1204326f9b" \
    "8efc80a86f6ff4d3219818a5ca30e8896844025e59218bef6ffcb72dc631cdb5" \
    "2f04afe62fa9b3d0b6b0468c0b4aa9ad5c1cbf9b982bd9e5d25b18f9e0fbbd82" \
    "5f24268ae8e92e8dd116142276f58e0743d8f43b6a6a05fff50c87167b3aa006" \
    "4abbb10f3963de4c62f8d25500508fe955dc7f7cd810979286e660eae47d49bf" \
    "d8645adb34fdff90733f774b1c1c0fd94a91bf55f63995f6d99e8123c6bd768d" \
    "cd27752b6163e1e5c5891a26a97d28132faab9fd5e60d9872e19f0c2a3b4e90a" \
    "7d23d08f531f038013512ed953b5e34457920f9345b9e6fa12ed35b36e40bacb" \
    "bcd246dc9c01c69c01c73c3081adc0d7ed0b53b976b876be7db8aa321b7d0ed9" \
    "61caa8f3e7de"
#define EXP_E "9a58b4e143828e35b91c9f662eca7df175318466ccaeb3de77cbf6e3f0c11248"
#define EXP_S "a881b2aa5858b550a0457c2514ae37b959a1fc5b41dcfc5929388a96c06bbd24"
#define EXP_U "8a7847a000c8ce3ba476a234e913dce696e156fafce49fc5caded05cd99b7633"
#define EXP_CONTENT_K "3cbed97239e385de092b6be910e2660217ce300c99d4695bed8d14d30959bc3c"
#define EXP_KC "eaa3acf4359342ea13c11c5fa4738b2bff4d0794a30c588536704cfa94be6bce"
#define EXP_MSGID_HASH "06b40d7474bf6a86e575dbde9fac40949e7db7963c16d58229679c4c33ea8b3f"
#define EXP_c "e63e457ea9d456c43b88b3b2a3df020fc9fad05a6b8f696b4d34a29638ec7306"
#define EXP_z "a9d809211f44e3ef473fcdd76cc427b13ec83fe3a8096a971e37d8671b8d900c"
#define EXP_ENVELOPE \
    "01016024990516724decbf96c49f3e2c7a6018b3e4a06098510d901f2434fd39" \
    "515100000000000000079a58b4e143828e35b91c9f662eca7df175318466ccae" \
    "b3de77cbf6e3f0c11248eaa3acf4359342ea13c11c5fa4738b2bff4d0794a30c" \
    "588536704cfa94be6bce8a7847a000c8ce3ba476a234e913dce696e156fafce4" \
    "9fc5caded05cd99b7633a9d809211f44e3ef473fcdd76cc427b13ec83fe3a809" \
    "6a971e37d8671b8d900c"
#define EXP_STREAM_UNSIGNED \
    "000102030405060708090a0b0c0d0e0f1011121314151617c10528a7569affba" \
    "2bb4973cce184dd422182b8a51bf4683c2a06c497575e66cf35600274238a53a" \
    "cd118c204caa4dac0f9b9f5d01a8e7488427a4bb13f6f02fc153a90d9c914d6c" \
    "1dd0191ea890e3ebdb4f74da41e7e24bf69cc093a7664df32b4c006b4fcffc38" \
    "b51a5c25d5993f7f2d820d0c82d285c2f24aae9e9cb9dee6afe354b6ab76ab60" \
    "67fdfaf5c385b9494416e484a299a15cb530a2f81976d92bca158fc0388ac357" \
    "6e9526e3a02ecef661a6589b2da908a28ce652c0e46a66fc85fb00431ce38015" \
    "cd5e49666cfbf1cc0f6a3ccca725bfa72359f138dcaa062a098ce941c4b3e5ab" \
    "3161e14a44f840cbc8a83cf2229fde4c886c5914582c8cfadda119a5a9b1c874" \
    "c17cbfe6b829483b246221916ee15c46b513eeead1332f623f13306125af038d" \
    "a44f8104373af7a061900a0e4241f2427141e39588bef5eb41c69abc9dad0ee2" \
    "ad18959ff7d5857bf3ce385df66f301837d9e1af137da3cc03bee52566058a9a" \
    "95063543acf85dc9d0782b56a063e94a4e9882a38dbd74168151a324f0672b91" \
    "326b11f2c9b62398f19f34d8f97d9ca6cea8289964a15daa079ce5462e9ac2bf" \
    "330758e32ae45514ac68ea9e4da06bd9e53adf60827b7ef20b65d30b2feb2869" \
    "c6b6bd788b952d421759b5c0c0cf582814b116bbfa9036d70eeb7ceb63654f11" \
    "23d69f3d1cbec58fef7ccdc18a6d260e2c62a33cd0f28dc5342f0abd994fc7cb" \
    "17fed05116b534bb8b"
#define EXP_POST_SIG \
    "be14359ab063efa6166867e0deff98db9bb387cfc7a38499fa05f8b81f8ce9bf" \
    "025d92429d995943465e5e6322a1328b39ab4e5cc8afd362b2cc27c85b79c10b"
#define EXP_STREAM_SIGNED \
    "000102030405060708090a0b0c0d0e0f1011121314151617c10528a7569affba" \
    "2bb4973cce184dd422182b8a51bf4683c2a06c497575e66cf35600274238a53a" \
    "cd118c204caa4dac0f9b9f5d01a8e7488427a4bb13f6f02fc153a90d9c914d6c" \
    "1dd0191ea890e3ebdb4f74da41e7e24bf69cc093a7664df32b4c006b4fcffc38" \
    "b51a5c25d5993f7f2d820d0c82d285c2f24aae9e9cb9dee6afe354b6ab76ab60" \
    "67fdfaf5c385b9494416e484a299a15cb530a2f81976d92bca158fc0388ac357" \
    "6e9526e3a190db43fb163b748bbf60c56c38ad583ff1d57b4a3ca3c7851985ed" \
    "7541c58fd3f9ac5e4df7a595e463e1f9407b500a5793ad6455444692a601298c" \
    "f93a988b4ff8dbcaa88ca5f734ed93a037fa9d8b6600f69ac512fd05c9299979" \
    "51639bd24510196a246221916ee15c41a4728283b2566f0747725d1149ca2de2" \
    "d628acf4761f07a13b6b4dc0c77b1dc50348ac6cc132e1205a58882ba1842938" \
    "a2be5c390f859b9d0b7f1f7466c049e106a817595c124fa381d8ba4a8c740ee4" \
    "2f534ac740a627efaf85297f344792bc8aa8b13f735854c99c61df3c31bb5dc4" \
    "1c62112c49b62398f19f34d8f97d9ca6cea8289964a15daa079ce5462e9ac2bf" \
    "330758e32ae45514ac68ea9e4da06bd9e53adf60827b7ef20b65d30b2feb2869" \
    "c6b6bd788b952d421759b5c0c0cf582814b116bbfa9036d70eeb7ceb63654f11" \
    "23d69f3d1cbec58fef7ccdc18a6d260e2c62a33cd0f28dc534029b4de01279e1" \
    "8c48a507aaac56b340"
#define EXP_STREAM_LONG_HASH "8b36dee8d976b65ee4c3cf3f7fae4b8369fed9102bed68bcc5a013296d49ef84"
#define EXP_R "386a25097407526892ed68cf7fb2bf394ca55bf27173d03557c41cd6b07af14c"
#define EXP_STANZA_FIXED \
    "386a25097407526892ed68cf7fb2bf394ca55bf27173d03557c41cd6b07af14c" \
    "0166e66f122cc8d38efa908c2bc98b45c6b7c8ee1bb1e8bcb50e711d81926f18" \
    "000d1d495aa92a39cf3e3741391b11bd2ee0ff509f0cceb2ade6792df85c18fd" \
    "421390c81e685bc1f0fee2e1fb18fe113a5dea79d313c95bd8c28eeb9d120432" \
    "6f9b8efc80a86f6ff4d3219818a5ca30e8896844025e59218bef6ffcb72dc631" \
    "cdb52f04afe62fa9b3d0b6b0468c0b4aa9ad5c1cbf9b982bd9e5d25b18f9e0fb" \
    "bd825f24268ae8e92e8dd116142276f58e0743d8f43b6a6a05fff50c87167b3a" \
    "a0064abbb10f3963de4c62f8d25500508fe955dc7f7cd810979286e660eae47d" \
    "49bfd8645adb34fdff90733f774b1c1c0fd94a91bf55f63995f6d99e8123c6bd" \
    "768dcd27752b6163e1e5c5891a26a97d28132faab9fd5e60d9872e19f0c2a3b4" \
    "e90a7d23d08f531f038013512ed953b5e34457920f9345b9e6fa12ed35b36e40" \
    "bacbbcd246dc9c01c69c01c73c3081adc0d7ed0b53b976b876be7db8aa321b7d" \
    "0ed961caa8f3e7de"

/* ---- helpers ---- */

static int mismatches;

static void unhex(uint8_t *out, size_t outlen, const char *hex)
{
    size_t len = 0;
    assert_int_equal(sodium_hex2bin(out, outlen, hex, strlen(hex), NULL, &len, NULL), 0);
    assert_int_equal(len, outlen);
}

/* Compare bytes with an expected hex string; print the value on mismatch. */
static void check_hex(const char *name, const uint8_t *got, size_t len, const char *want)
{
    char *hex = malloc(2 * len + 1);
    assert_non_null(hex);
    sodium_bin2hex(hex, 2 * len + 1, got, len);
    if (strcmp(hex, want) != 0) {
        printf("VECTOR %s %s\n", name, hex);
        mismatches++;
    }
    free(hex);
}

static void check_str(const char *name, const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        printf("STRING %s %s\n", name, got);
        mismatches++;
    }
}

static void done_checks(void)
{
    int n = mismatches;
    mismatches = 0;
    assert_int_equal(n, 0);
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static int buf_sink(void *ctx, const uint8_t *p, size_t len)
{
    buf_t *b = ctx;
    if (b->len + len > b->cap) {
        size_t cap = (b->len + len) * 2 + 1024;
        uint8_t *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return 0;
}

/* BLAKE2b with a 16-byte NUL-padded personal, built here from FORMAT.md. */
static void b2_personal(uint8_t *out, size_t outlen, const char *label, const uint8_t *in,
                        size_t len)
{
    uint8_t personal[16] = {0}, salt[16] = {0};
    memcpy(personal, label, strlen(label));
    assert_int_equal(crypto_generichash_blake2b_salt_personal(out, outlen, in, len, NULL, 0,
                                                              salt, personal),
                     0);
}

static void put_label(uint8_t *p, const char *label)
{
    memset(p, 0, 16);
    memcpy(p, label, strlen(label));
}

/* ---- the fixture: every party's keys from the fixed inputs ---- */

typedef struct {
    rc_list_secret ls;
    rc_statement st;
    rc_device_secret dev;
    rc_cert cert;
    rc_device_entry entry;
    uint8_t k[32], t[32], u[32], hdr[24];
    uint8_t list_id[32];
} fixture;

static fixture F;

static int setup(void **state)
{
    (void)state;
    rc_error err;
    uint8_t seed[32];
    if (rc_init(&err) != 0)
        return -1;
    memset(&F, 0, sizeof F);
    /* list secret of epoch IN_EPOCH */
    if (rc_address_canonical(F.ls.address, IN_LIST_ADDRESS, &err) != 0)
        return -1;
    F.ls.epoch = IN_EPOCH;
    sodium_hex2bin(F.ls.a, 32, HEX_a, 64, NULL, NULL, NULL);
    crypto_scalarmult_ristretto255_base(F.ls.A, F.ls.a);
    sodium_hex2bin(seed, 32, HEX_LIST_SIGN_SEED, 64, NULL, NULL, NULL);
    crypto_sign_seed_keypair(F.ls.sign_pk, F.ls.sign_sk, seed);
    /* device */
    sodium_hex2bin(F.dev.wrap_sk, 32, HEX_DEV_WRAP_SK, 64, NULL, NULL, NULL);
    crypto_scalarmult_base(F.dev.pub.wrap_pk, F.dev.wrap_sk);
    sodium_hex2bin(seed, 32, HEX_DEV_SIGN_SEED, 64, NULL, NULL, NULL);
    crypto_sign_seed_keypair(F.dev.pub.sign_pk, F.dev.sign_sk, seed);
    /* scalars and stream header */
    sodium_hex2bin(F.k, 32, HEX_k, 64, NULL, NULL, NULL);
    sodium_hex2bin(F.t, 32, HEX_t, 64, NULL, NULL, NULL);
    sodium_hex2bin(F.u, 32, HEX_u, 64, NULL, NULL, NULL);
    sodium_hex2bin(F.hdr, 24, HEX_STREAM_HEADER, 48, NULL, NULL, NULL);
    if (rc_list_id(F.list_id, IN_LIST_ADDRESS, &err) != 0 ||
        rc_statement_sign(&F.st, &F.ls, IN_NOT_BEFORE, IN_NOT_AFTER, &err) != 0 ||
        rc_cert_sign(&F.cert, &F.ls, IN_MEMBER, F.dev.pub.sign_pk, &err) != 0 ||
        rc_entry_create_det(&F.entry, &F.ls, &F.dev.pub, IN_MEMBER, IN_ENROLLED_AT, F.k, &err) !=
            0) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* ---- UDF ---- */

static void test_udf(void **state)
{
    (void)state;
    char out[RC_UDF_MAX];
    const uint8_t *d = (const uint8_t *)"UDF Data Value";
    assert_int_equal(rc_udf(out, sizeof out, "text/plain", d, 14, 140, NULL), 0);
    check_str("udf140", out, "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF");
    assert_int_equal(rc_udf(out, sizeof out, "text/plain", d, 14, 100, NULL), 0);
    check_str("udf100", out, "MDDK-7N6A-727A-JZNO-STRX");
    assert_int_equal(
        rc_key_fingerprint(out, sizeof out, "list-signer", F.ls.sign_pk, 32, NULL), 0);
    check_str("fp_list_signer", out, EXP_FP_LIST_SIGNER);
    assert_int_equal(
        rc_key_fingerprint(out, sizeof out, "device-signer", F.dev.pub.sign_pk, 32, NULL), 0);
    check_str("fp_device_signer", out, EXP_FP_DEVICE_SIGNER);
    /* the same, from FORMAT.md's definition */
    assert_int_equal(rc_udf(out, sizeof out, "application/vnd.recrypt.device-signer",
                            F.dev.pub.sign_pk, 32, 140, NULL),
                     0);
    check_str("fp_device_signer_udf", out, EXP_FP_DEVICE_SIGNER);
    done_checks();
}

/* ---- keys, list id, key strings ---- */

static void test_keys(void **state)
{
    (void)state;
    uint8_t id[32], buf[1 + 19];
    char canon[RC_ADDR_MAX + 1];
    assert_int_equal(rc_address_canonical(canon, IN_LIST_ADDRESS, NULL), 0);
    assert_string_equal(canon, IN_LIST_CANON);
    check_hex("list_id", F.list_id, 32, EXP_LIST_ID);
    buf[0] = 1;
    memcpy(buf + 1, IN_LIST_CANON, 19);
    b2_personal(id, 32, "recrypt/list-id", buf, sizeof buf);
    check_hex("list_id_rebuilt", id, 32, EXP_LIST_ID);
    check_hex("A", F.ls.A, 32, EXP_A);
    check_hex("list_sign_pk", F.ls.sign_pk, 32, EXP_LIST_SIGN_PK);
    check_hex("device_wrap_pk", F.dev.pub.wrap_pk, 32, EXP_DEV_WRAP_PK);
    check_hex("device_sign_pk", F.dev.pub.sign_pk, 32, EXP_DEV_SIGN_PK);
    done_checks();
}

static void test_keystrings(void **state)
{
    (void)state;
    char s[RC_KEYSTR_MAX];
    rc_error err;
    rc_service_secret svc;
    rc_owner_secret own;
    uint8_t seed[32];

    assert_int_equal(rc_device_public_encode(s, sizeof s, &F.dev.pub, NULL), 0);
    check_str("ks_device", s, EXP_KS_DEVICE);
    assert_int_equal(rc_device_secret_encode(s, sizeof s, &F.dev, NULL), 0);
    check_str("ks_device_secret", s, EXP_KS_DEVICE_SECRET);

    sodium_hex2bin(svc.sk, 32, HEX_SERVICE_SK, 64, NULL, NULL, NULL);
    crypto_scalarmult_base(svc.pub.pk, svc.sk);
    assert_int_equal(rc_service_public_encode(s, sizeof s, &svc.pub, NULL), 0);
    check_str("ks_service", s, EXP_KS_SERVICE);
    assert_int_equal(rc_service_secret_encode(s, sizeof s, &svc, NULL), 0);
    check_str("ks_service_secret", s, EXP_KS_SERVICE_SECRET);

    sodium_hex2bin(own.box_sk, 32, HEX_OWNER_BOX_SK, 64, NULL, NULL, NULL);
    crypto_scalarmult_base(own.pub.box_pk, own.box_sk);
    sodium_hex2bin(seed, 32, HEX_OWNER_SIGN_SEED, 64, NULL, NULL, NULL);
    crypto_sign_seed_keypair(own.pub.sign_pk, own.sign_sk, seed);
    assert_int_equal(rc_owner_public_encode(s, sizeof s, &own.pub, NULL), 0);
    check_str("ks_owner", s, EXP_KS_OWNER);
    assert_int_equal(rc_owner_secret_encode(s, sizeof s, &own, NULL), 0);
    check_str("ks_owner_secret", s, EXP_KS_OWNER_SECRET);

    assert_int_equal(rc_list_secret_encode(s, sizeof s, &F.ls, NULL), 0);
    check_str("ks_list_secret", s, EXP_KS_LIST_SECRET);
    assert_int_equal(rc_statement_encode(s, sizeof s, &F.st, NULL), 0);
    check_str("ks_listkey", s, EXP_KS_LISTKEY);

    /* The checksum, rebuilt: first 4 bytes of BLAKE2b-256(personal
     * "recrypt/keystr", "recrypt1." ‖ type ‖ "." ‖ payload). */
    {
        uint8_t in[9 + 6 + 1 + 64], h[32];
        memcpy(in, "recrypt1.device.", 16);
        memcpy(in + 16, F.dev.pub.wrap_pk, 32);
        memcpy(in + 48, F.dev.pub.sign_pk, 32);
        b2_personal(h, 32, "recrypt/keystr", in, sizeof in);
        check_hex("ks_device_check", h, 4, EXP_KS_DEVICE_CHECK);
    }

    /* Decoding: round trip, white space dropped, errors. */
    rc_device_public dp;
    rc_device_secret ds;
    rc_list_secret lsd;
    rc_statement std;
    assert_int_equal(rc_device_public_decode(&dp, EXP_KS_DEVICE, NULL), 0);
    assert_memory_equal(&dp, &F.dev.pub, sizeof dp);
    assert_int_equal(rc_device_secret_decode(&ds, EXP_KS_DEVICE_SECRET, NULL), 0);
    assert_memory_equal(ds.sign_sk, F.dev.sign_sk, 64);
    assert_memory_equal(ds.wrap_sk, F.dev.wrap_sk, 32);
    assert_int_equal(rc_list_secret_decode(&lsd, EXP_KS_LIST_SECRET, NULL), 0);
    assert_memory_equal(lsd.A, F.ls.A, 32);
    assert_memory_equal(lsd.sign_pk, F.ls.sign_pk, 32);
    assert_int_equal(rc_statement_decode(&std, EXP_KS_LISTKEY, NULL), 0);
    assert_memory_equal(std.sig, F.st.sig, 64);

    char folded[RC_KEYSTR_MAX + 16];
    size_t n = strlen(EXP_KS_DEVICE);
    snprintf(folded, sizeof folded, "  %.*s\r\n\t%s\n", 40, EXP_KS_DEVICE, &EXP_KS_DEVICE[40]);
    assert_true(n > 40);
    assert_int_equal(rc_device_public_decode(&dp, folded, NULL), 0);
    assert_memory_equal(&dp, &F.dev.pub, sizeof dp);

    /* another version: RC_E_VERSION */
    snprintf(s, sizeof s, "recrypt2%s", &EXP_KS_DEVICE[8]);
    assert_int_equal(rc_device_public_decode(&dp, s, &err), RC_E_VERSION);
    /* another type word */
    assert_int_equal(rc_service_public_decode(&svc.pub, EXP_KS_DEVICE, &err), RC_E_FORMAT);
    /* one character changed: checksum mismatch */
    snprintf(s, sizeof s, "%s", EXP_KS_DEVICE);
    s[20] = s[20] == 'A' ? 'B' : 'A';
    assert_int_equal(rc_device_public_decode(&dp, s, &err), RC_E_FORMAT);
    /* non-canonical base64url: 68 bytes leave 4 spare bits in the last
     * character; setting one of them must be refused. */
    snprintf(s, sizeof s, "%s", EXP_KS_DEVICE);
    {
        char *last = s + strlen(s) - 1;
        static const char alpha[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        size_t v = (size_t)(strchr(alpha, *last) - alpha);
        *last = alpha[v ^ 1];
    }
    assert_int_equal(rc_device_public_decode(&dp, s, &err), RC_E_FORMAT);
    done_checks();
}

/* ---- statement and certificate ---- */

static void test_statement(void **state)
{
    (void)state;
    uint8_t b[RC_STATEMENT_MAX], msg[16 + RC_STATEMENT_MAX];
    size_t len;
    rc_error err;
    rc_statement st2;
    assert_int_equal(rc_statement_to_bytes(b, sizeof b, &len, &F.st, NULL), 0);
    check_hex("statement", b, len, EXP_STATEMENT);
    /* rebuilt: signature = Ed25519(label ‖ bytes without the signature) */
    assert_true(len > 64);
    put_label(msg, "recrypt/stmt");
    memcpy(msg + 16, b, len - 64);
    assert_int_equal(crypto_sign_verify_detached(b + len - 64, msg, 16 + len - 64, F.ls.sign_pk),
                     0);
    assert_int_equal(rc_statement_from_bytes(&st2, b, len, NULL), 0);
    assert_int_equal(rc_statement_verify(&st2, NULL), 0);
    /* an unknown version byte: RC_E_VERSION */
    b[0] = 3; /* versions 1 and 2 are read */
    assert_int_equal(rc_statement_from_bytes(&st2, b, len, &err), RC_E_VERSION);
    done_checks();
}

/* ---- version 2 statement and the service signature (FORMAT.md §4, §8.1, §11.8) ---- */

#define HEX_SVC_SEED "9191919191919191919191919191919191919191919191919191919191919191"
#define EXP_SVC_PK \
    "8ca63145907a2e6c5fb3dc0791c0189b8252da3e4143704b3b2ca4e526f25dd1"
#define EXP_STATEMENT_V2 \
    "0213667269656e6473406578616d706c652e6f726700000000000000076a0c64" \
    "12656065a30790208b8acc969927edc8a0144d1d0d372223a1b8a5e87a000000" \
    "0064bb5a80000000006b49d200c050c5637a44fa8629fff3cccce2300cb362a6" \
    "3d99d95fc54145266f4332445a8ca63145907a2e6c5fb3dc0791c0189b8252da" \
    "3e4143704b3b2ca4e526f25dd100012df04125f0015afb47ce853aef8772094f" \
    "f9498c14cb1b9e12973c2927da0fa61a2d960743c87930c6a2bf43701d352649" \
    "503452c1320ff5e5ba2ce08987dc2f6bd1ab3b9d874d03647c5f3588c4d60c33" \
    "a44049fcaac8fbd8a088f8c0293f0a"
#define EXP_KS_LISTKEY_V2 \
    "recrypt1.listkey.AhNmcmllbmRzQGV4YW1wbGUub3JnAAAAAAAAAAdqDGQSZWBloweQIIuKzJaZJ-3IoBRNHQ03IiOhuKXoegAAAABku1qAAAAAAGtJ0gDAUMVjekT6hin_88zM4jAMs2KmPZnZX8VBRSZvQzJEWoymMUWQei5sX7PcB5HAGJuCUto-QUNwSzsspOUm8l3RAAEt8EEl8AFa-0fOhTrvh3IJT_lJjBTLG54SlzwpJ9oPphotlgdDyHkwxqK_Q3AdNSZJUDRSwTIP9eW6LOCJh9wva9GrO52HTQNkfF81iMTWDDOkQEn8qsj72KCI-MApPwohhibV"
#define EXP_STANZA_HASH \
    "0e6c536d684481a596d4cebf4d8191cdb067092667f238828fb133a4c750ce2e"
#define EXP_SVC_SIG_INLINE \
    "c62124ebece66214615e8df17d78ac338328720b1b6bfd186b2d9cc435e09214" \
    "234974c1bbcd411d67e156d30236a2603c3fc36e99ca8908a61e5192acd46102"
#define EXP_SVC_SIG_SPLIT \
    "213fce15710c3248f25d79bfa9cfd1feecc15577ca162dc7f0e162741ee57bec" \
    "3503177d2b1fbe653e9d6356c6df6e33db98ad7be980730ae3aabdaf93bffa06"

static void test_statement_v2_svcsig(void **state)
{
    (void)state;
    uint8_t seed[32], pk[32], b[RC_STATEMENT_MAX], msg[16 + RC_STATEMENT_MAX], h[32], h2[32],
        sig[64];
    size_t len;
    rc_error err;
    rc_statement st, st2;
    char ks[RC_KEYSTR_MAX];
    unhex(seed, 32, HEX_SVC_SEED);
    rc_svc_public(pk, seed);
    check_hex("svc_pk", pk, 32, EXP_SVC_PK);
    /* the statement of §11.4 as version 2: service key above, the device
     * key of §11.2 revoked */
    assert_int_equal(rc_statement_sign_v2(&st, &F.ls, IN_NOT_BEFORE, IN_NOT_AFTER, pk,
                                          (const uint8_t(*)[32])F.dev.pub.sign_pk, 1, &err),
                     0);
    assert_int_equal(rc_statement_to_bytes(b, sizeof b, &len, &st, NULL), 0);
    check_hex("statement_v2", b, len, EXP_STATEMENT_V2);
    assert_int_equal(len, 1 + 1 + 19 + 8 + 32 + 8 + 8 + 32 + 32 + 2 + 32 + 64);
    put_label(msg, "recrypt/stmt");
    memcpy(msg + 16, b, len - 64);
    assert_int_equal(crypto_sign_verify_detached(b + len - 64, msg, 16 + len - 64, F.ls.sign_pk),
                     0);
    assert_int_equal(rc_statement_encode(ks, sizeof ks, &st, &err), 0);
    check_str("ks_listkey_v2", ks, EXP_KS_LISTKEY_V2);
    assert_int_equal(rc_statement_decode(&st2, ks, &err), 0);
    assert_int_equal(st2.n_revoked, 1);
    /* H(stanzas) of the one stanza of §11.5, rebuilt by hand:
     * BLAKE2b-256(personal "recrypt/stanzas", 01 ‖ u16 len ‖ stanza) */
    rc_stanza stz;
    uint8_t sb[RC_STANZA_MAX], hin[1 + 2 + RC_STANZA_MAX], salt[16] = {0}, pers[16];
    size_t sl = strlen(EXP_STANZA_FIXED) / 2;
    unhex(sb, sl, EXP_STANZA_FIXED);
    assert_int_equal(rc_stanza_from_bytes(&stz, sb, sl, &err), 0);
    assert_int_equal(rc_svc_stanza_hash(h, &stz, 1, &err), 0);
    check_hex("stanza_hash", h, 32, EXP_STANZA_HASH);
    hin[0] = 1;
    hin[1] = (uint8_t)(sl >> 8);
    hin[2] = (uint8_t)sl;
    memcpy(hin + 3, sb, sl);
    put_label(pers, "recrypt/stanzas");
    crypto_generichash_blake2b_salt_personal(h2, 32, hin, 3 + sl, NULL, 0, salt, pers);
    assert_memory_equal(h, h2, 32);
    /* the service signature of the recrypted example (§11.6): inline, and
     * as a split copy for alice */
    rc_envelope env;
    memset(&env, 0, sizeof env);
    memcpy(env.list_id, F.list_id, 32);
    env.epoch = IN_EPOCH;
    unhex(env.E, 32, EXP_E);
    unhex(env.KC, 32, EXP_KC);
    assert_int_equal(rc_svc_sign(sig, seed, &env, IN_DATE, h, "", &err), 0);
    check_hex("svc_sig_inline", sig, 64, EXP_SVC_SIG_INLINE);
    assert_int_equal(rc_svc_sign(sig, seed, &env, IN_DATE, h, "alice@example.org", &err), 0);
    check_hex("svc_sig_split", sig, 64, EXP_SVC_SIG_SPLIT);
    /* rebuilt: label ‖ 01 ‖ list_id ‖ epoch ‖ E ‖ KC ‖ date ‖ H ‖ str8(recipient) */
    uint8_t m[16 + 1 + 32 + 8 + 32 + 32 + 8 + 32 + 1 + 17], *q = m;
    put_label(q, "recrypt/svc-sig");
    q += 16;
    *q++ = 1;
    memcpy(q, F.list_id, 32), q += 32;
    for (int i = 7; i >= 0; i--)
        *q++ = (uint8_t)((uint64_t)IN_EPOCH >> (8 * i));
    memcpy(q, env.E, 32), q += 32;
    memcpy(q, env.KC, 32), q += 32;
    for (int i = 7; i >= 0; i--)
        *q++ = (uint8_t)((uint64_t)IN_DATE >> (8 * i));
    memcpy(q, h, 32), q += 32;
    *q++ = 17;
    memcpy(q, "alice@example.org", 17), q += 17;
    assert_int_equal(crypto_sign_verify_detached(sig, m, (size_t)(q - m), pk), 0);
    done_checks();
}

static void test_cert(void **state)
{
    (void)state;
    uint8_t b[RC_CERT_MAX], msg[16 + RC_CERT_MAX];
    size_t len;
    rc_error err;
    rc_cert c2;
    assert_int_equal(rc_cert_to_bytes(b, sizeof b, &len, &F.cert, NULL), 0);
    check_hex("cert", b, len, EXP_CERT);
    assert_true(len > 64);
    put_label(msg, "recrypt/cert");
    memcpy(msg + 16, b, len - 64);
    assert_int_equal(crypto_sign_verify_detached(b + len - 64, msg, 16 + len - 64, F.ls.sign_pk),
                     0);
    assert_int_equal(rc_cert_from_bytes(&c2, b, len, NULL), 0);
    assert_int_equal(rc_cert_verify(&c2, F.ls.sign_pk, NULL), 0);
    b[0] = 2;
    assert_int_equal(rc_cert_from_bytes(&c2, b, len, &err), RC_E_VERSION);
    done_checks();
}

/* ---- device entry ---- */

static void test_entry(void **state)
{
    (void)state;
    uint8_t plain[RC_WRAP_PLAIN_MAX], want[RC_WRAP_PLAIN_MAX], certb[RC_CERT_MAX];
    size_t certlen, plen = F.entry.W_len - crypto_box_SEALBYTES;
    rc_share sh;
    check_hex("r", F.entry.r, 32, EXP_r);

    check_hex("K_member", F.entry.K, 32, EXP_K_MEMBER);
    assert_int_equal(rc_entry_check(F.entry.r, F.entry.K, F.ls.A, NULL), 0);
    /* W is randomized: open it and compare its plaintext */
    assert_int_equal(crypto_box_seal_open(plain, F.entry.W, F.entry.W_len, F.dev.pub.wrap_pk,
                                          F.dev.wrap_sk),
                     0);
    check_hex("W_plain", plain, plen, EXP_W_PLAIN);
    /* rebuilt from the layout */
    assert_int_equal(rc_cert_to_bytes(certb, sizeof certb, &certlen, &F.cert, NULL), 0);
    put_label(want, "recrypt/wrap");
    want[16] = 1;
    memcpy(want + 17, F.list_id, 32);
    rc_be64_put(want + 49, IN_EPOCH);
    memcpy(want + 57, F.ls.A, 32);
    memcpy(want + 89, F.dev.pub.wrap_pk, 32);
    memcpy(want + 121, F.k, 32);
    rc_be16_put(want + 153, (uint16_t)certlen);
    memcpy(want + 155, certb, certlen);
    assert_int_equal(plen, 155 + certlen);
    assert_memory_equal(plain, want, plen);
    /* the device recovers k and its certificate */
    assert_int_equal(rc_wrap_open(&sh, &F.dev, F.entry.W, F.entry.W_len, NULL), 0);
    assert_memory_equal(sh.k, F.k, 32);
    assert_memory_equal(sh.A, F.ls.A, 32);
    assert_string_equal(sh.cert.address, IN_MEMBER_CANON);
    /* and the fixed W of the MIME example opens to the same plaintext */
    {
        uint8_t W[RC_WRAP_MAX];
        size_t wl = strlen(EXP_W_FIXED) / 2;
        unhex(W, wl, EXP_W_FIXED);
        assert_int_equal(
            crypto_box_seal_open(plain, W, wl, F.dev.pub.wrap_pk, F.dev.wrap_sk), 0);
        check_hex("W_fixed_plain", plain, wl - crypto_box_SEALBYTES, EXP_W_PLAIN);
    }
    done_checks();
}

/* ---- sending ---- */

static int seal(buf_t *out, rc_envelope *env, const uint8_t *msg, size_t len, int signed_)
{
    rc_sealer *s = NULL;
    rc_error err;
    int rc = rc_sealer_new_det(&s, env, &F.st, IN_DATE, IN_MESSAGE_ID, signed_ ? &F.dev : NULL,
                               signed_ ? &F.cert : NULL, F.t, F.u, F.hdr, &err);
    if (rc == 0)
        rc = rc_sealer_update(s, msg, len, buf_sink, out, &err);
    if (rc == 0)
        rc = rc_sealer_final(s, buf_sink, out, &err);
    rc_sealer_free(s);
    return rc;
}

static void test_send(void **state)
{
    (void)state;
    rc_envelope env;
    uint8_t E[32], S[32], U[32], K[32], KC[32], c[32], z[32], envb[RC_ENVELOPE_BYTES];
    uint8_t in[256], h[64], mid[32];
    buf_t out = {0};
    assert_int_equal(seal(&out, &env, (const uint8_t *)IN_MESSAGE, strlen(IN_MESSAGE), 0), 0);

    crypto_scalarmult_ristretto255_base(E, F.t);
    assert_int_equal(crypto_scalarmult_ristretto255(S, F.t, F.ls.A), 0);
    crypto_scalarmult_ristretto255_base(U, F.u);
    check_hex("E", E, 32, EXP_E);
    check_hex("E_env", env.E, 32, EXP_E);
    check_hex("S", S, 32, EXP_S);
    check_hex("U", U, 32, EXP_U);
    check_hex("U_env", env.U, 32, EXP_U);

    /* K ‖ KC rebuilt */
    size_t n = 0;
    in[n++] = 1;
    in[n++] = 1;
    memcpy(in + n, F.list_id, 32), n += 32;
    rc_be64_put(in + n, IN_EPOCH), n += 8;
    memcpy(in + n, F.ls.A, 32), n += 32;
    memcpy(in + n, E, 32), n += 32;
    memcpy(in + n, S, 32), n += 32;
    b2_personal(h, 64, "recrypt/content", in, n);
    check_hex("content_K", h, 32, EXP_CONTENT_K);
    check_hex("KC", h + 32, 32, EXP_KC);
    assert_int_equal(rc_derive_content_key(K, KC, F.list_id, IN_EPOCH, F.ls.A, E, S), 0);
    check_hex("content_K_lib", K, 32, EXP_CONTENT_K);
    check_hex("KC_lib", KC, 32, EXP_KC);
    check_hex("KC_env", env.KC, 32, EXP_KC);

    /* Message-ID hash and challenge rebuilt */
    n = 0;
    in[n++] = 1;
    memcpy(in + n, IN_MESSAGE_ID, strlen(IN_MESSAGE_ID)), n += strlen(IN_MESSAGE_ID);
    b2_personal(mid, 32, "recrypt/msgid", in, n);
    check_hex("msgid_hash", mid, 32, EXP_MSGID_HASH);
    n = 0;
    in[n++] = 1;
    memcpy(in + n, F.list_id, 32), n += 32;
    rc_be64_put(in + n, IN_EPOCH), n += 8;
    memcpy(in + n, F.ls.A, 32), n += 32;
    memcpy(in + n, E, 32), n += 32;
    memcpy(in + n, U, 32), n += 32;
    rc_be64_put(in + n, IN_DATE), n += 8;
    memcpy(in + n, mid, 32), n += 32;
    b2_personal(h, 64, "recrypt/proof", in, n);
    crypto_core_ristretto255_scalar_reduce(c, h);
    check_hex("c", c, 32, EXP_c);
    assert_int_equal(rc_proof_challenge(h, F.list_id, IN_EPOCH, F.ls.A, E, U, IN_DATE,
                                        IN_MESSAGE_ID),
                     0);
    check_hex("c_lib", h, 32, EXP_c);
    crypto_core_ristretto255_scalar_mul(z, c, F.t);
    crypto_core_ristretto255_scalar_add(z, z, F.u);
    check_hex("z", z, 32, EXP_z);
    check_hex("z_env", env.z, 32, EXP_z);
    assert_int_equal(rc_proof_verify(&env, F.ls.A, IN_DATE, IN_MESSAGE_ID, NULL), 0);
    assert_int_not_equal(rc_proof_verify(&env, F.ls.A, IN_DATE + 1, IN_MESSAGE_ID, NULL), 0);
    assert_int_not_equal(rc_proof_verify(&env, F.ls.A, IN_DATE, "other@example.org", NULL), 0);

    assert_int_equal(rc_envelope_to_bytes(envb, &env), 0);
    check_hex("envelope", envb, sizeof envb, EXP_ENVELOPE);
    check_hex("stream_unsigned", out.p, out.len, EXP_STREAM_UNSIGNED);

    /* decrypt with plain libsodium from the layout of FORMAT.md */
    {
        crypto_secretstream_xchacha20poly1305_state ss;
        uint8_t ad[16 + RC_ENVELOPE_BYTES], pt[1024], want[1024];
        unsigned long long plen;
        unsigned char tag;
        size_t ml = strlen(IN_MESSAGE);
        put_label(ad, "recrypt/header");
        memcpy(ad + 16, envb, sizeof envb);
        assert_int_equal(out.len, 24 + 512 + 17);
        assert_int_equal(crypto_secretstream_xchacha20poly1305_init_pull(&ss, out.p, K), 0);
        assert_int_equal(crypto_secretstream_xchacha20poly1305_pull(
                             &ss, pt, &plen, &tag, out.p + 24, out.len - 24, ad, sizeof ad),
                         0);
        assert_int_equal(tag, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
        assert_int_equal(plen, 512);
        memset(want, 0, sizeof want);
        memcpy(want, IN_MESSAGE, ml);
        want[ml] = 0x00;     /* trailer: unsigned */
        want[ml + 1] = 0x00; /* u16 trailer length = 1 */
        want[ml + 2] = 0x01;
        want[ml + 3] = 0x80; /* ISO/IEC 7816-4 padding */
        assert_memory_equal(pt, want, 512);
    }
    free(out.p);
    done_checks();
}

static void test_send_signed(void **state)
{
    (void)state;
    rc_envelope env;
    buf_t out = {0};
    uint8_t K[32], KC[32], S[32], sig[64], certb[RC_CERT_MAX], envb[RC_ENVELOPE_BYTES];
    size_t certlen, ml = strlen(IN_MESSAGE);
    assert_int_equal(seal(&out, &env, (const uint8_t *)IN_MESSAGE, ml, 1), 0);
    check_hex("stream_signed", out.p, out.len, EXP_STREAM_SIGNED);
    /* the Ed25519ph signature, rebuilt */
    {
        crypto_sign_state sst;
        uint8_t p[16 + 1 + 32 + 8 + 32 + 32];
        put_label(p, "recrypt/post-sig");
        p[16] = 1;
        memcpy(p + 17, F.list_id, 32);
        rc_be64_put(p + 49, IN_EPOCH);
        memcpy(p + 57, env.E, 32);
        memcpy(p + 89, env.KC, 32);
        crypto_sign_init(&sst);
        crypto_sign_update(&sst, p, sizeof p);
        crypto_sign_update(&sst, (const uint8_t *)IN_MESSAGE, ml);
        crypto_sign_final_create(&sst, sig, NULL, F.dev.sign_sk);
        check_hex("post_sig", sig, 64, EXP_POST_SIG);
    }
    /* decrypt and compare the padded plaintext with the layout */
    {
        crypto_secretstream_xchacha20poly1305_state ss;
        uint8_t ad[16 + RC_ENVELOPE_BYTES], pt[1024], want[1024];
        unsigned long long plen;
        unsigned char tag;
        assert_int_equal(crypto_scalarmult_ristretto255(S, F.t, F.ls.A), 0);
        rc_derive_content_key(K, KC, F.list_id, IN_EPOCH, F.ls.A, env.E, S);
        rc_envelope_to_bytes(envb, &env);
        put_label(ad, "recrypt/header");
        memcpy(ad + 16, envb, sizeof envb);
        assert_int_equal(out.len, 24 + 512 + 17);
        assert_int_equal(crypto_secretstream_xchacha20poly1305_init_pull(&ss, out.p, K), 0);
        assert_int_equal(crypto_secretstream_xchacha20poly1305_pull(
                             &ss, pt, &plen, &tag, out.p + 24, out.len - 24, ad, sizeof ad),
                         0);
        assert_int_equal(tag, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
        assert_int_equal(plen, 512);
        assert_int_equal(rc_cert_to_bytes(certb, sizeof certb, &certlen, &F.cert, NULL), 0);
        size_t n = 0, tl = 1 + 64 + 2 + certlen;
        memset(want, 0, sizeof want);
        memcpy(want, IN_MESSAGE, ml), n += ml;
        want[n++] = 0x01;
        memcpy(want + n, sig, 64), n += 64;
        rc_be16_put(want + n, (uint16_t)certlen), n += 2;
        memcpy(want + n, certb, certlen), n += certlen;
        rc_be16_put(want + n, (uint16_t)tl), n += 2;
        want[n] = 0x80;
        assert_memory_equal(pt, want, 512);
    }
    free(out.p);
    done_checks();
}

static void test_send_long(void **state)
{
    (void)state;
    rc_envelope env;
    buf_t out = {0};
    uint8_t *msg = malloc(LONG_LEN), h[32];
    assert_non_null(msg);
    for (size_t i = 0; i < LONG_LEN; i++)
        msg[i] = (uint8_t)(i % 251);
    /* FORMAT §11.5: "This stream is **unsigned**: P = long message ‖ 0x00 ‖
     * u16 1 (100003 bytes), padded to 100352". */
    assert_int_equal(seal(&out, &env, msg, LONG_LEN, 0), 0);
    /* 100000 + 3 bytes padded to 100352: 65536 (MESSAGE) + 34816 (FINAL) */
    assert_int_equal(out.len, 24 + (65536 + 17) + (34816 + 17));
    crypto_generichash(h, 32, out.p, out.len, NULL, 0);
    check_hex("stream_long_blake2b256", h, 32, EXP_STREAM_LONG_HASH);
    free(msg);
    free(out.p);
    done_checks();
}

/* ---- recryption and opening ---- */

static void test_recrypt_open(void **state)
{
    (void)state;
    rc_envelope env;
    buf_t out = {0}, pt = {0};
    rc_recryptor *rr;
    rc_stanza stz;
    rc_opener *op;
    rc_open_result res;
    uint8_t kE[32], S[32];
    assert_int_equal(seal(&out, &env, (const uint8_t *)IN_MESSAGE, strlen(IN_MESSAGE), 1), 0);
    for (int table = 0; table <= 1; table++) {
        assert_int_equal(rc_recryptor_new(&rr, env.E, table, NULL), 0);
        assert_int_equal(rc_recryptor_stanza(rr, F.entry.r, F.entry.W, F.entry.W_len, &stz, NULL),
                         0);
        rc_recryptor_free(rr);
        check_hex(table ? "R_table" : "R", stz.R, 32, EXP_R);
    }
    /* S = R + k·E */
    assert_int_equal(crypto_scalarmult_ristretto255(kE, F.k, env.E), 0);
    crypto_core_ristretto255_add(S, stz.R, kE);
    check_hex("S_from_R", S, 32, EXP_S);
    /* stanza bytes of the fixed W */
    {
        uint8_t b[RC_STANZA_MAX];
        size_t len;
        rc_stanza fx;
        memcpy(fx.R, stz.R, 32);
        fx.W_len = strlen(EXP_W_FIXED) / 2;
        unhex(fx.W, fx.W_len, EXP_W_FIXED);
        assert_int_equal(rc_stanza_to_bytes(b, sizeof b, &len, &fx, NULL), 0);
        check_hex("stanza_fixed", b, len, EXP_STANZA_FIXED);
    }
    assert_int_equal(rc_opener_new(&op, &env, &F.st, &F.dev, &stz, 1, IN_DATE, IN_MESSAGE_ID,
                                   NULL),
                     0);
    assert_int_equal(rc_opener_update(op, out.p, out.len, buf_sink, &pt, NULL), 0);
    assert_int_equal(rc_opener_final(op, buf_sink, &pt, &res, NULL), 0);
    rc_opener_free(op);
    assert_int_equal(res.is_signed, 1);
    assert_string_equal(res.cert.address, IN_MEMBER_CANON);
    assert_int_equal(pt.len, strlen(IN_MESSAGE));
    assert_memory_equal(pt.p, IN_MESSAGE, pt.len);
    free(out.p);
    free(pt.p);
    done_checks();
}

/* ---- MIME: the sealed, recrypted and opened example messages ---- */

static const char EXP_MIME_SEALED[] =
    "From: Alice <alice@example.org>\r\n"
    "To: friends@example.org\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <vector-1@example.org>\r\n"
    "Subject: [recrypt] encrypted message\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/encrypted;\r\n"
    " protocol=\"application/vnd.recrypt.control\";\r\n"
    " boundary=\"=_recrypt_000102030405060708090a0b\"\r\n"
    "\r\n"
    "This is an end-to-end encrypted message (recrypt). Your mail program needs\r\n"
    "the recrypt client to open it.\r\n"
    "\r\n"
    "--=_recrypt_000102030405060708090a0b\r\n"
    "Content-Type: application/vnd.recrypt.control\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "Content-Description: recrypt control data\r\n"
    "\r\n"
    "Version: 1\r\n"
    "Suite: 1\r\n"
    "List-Id: YCSZBRZyTey_lsSfPix6YBiz5KBgmFENkB8kNP05UVE\r\n"
    "Epoch: 7\r\n"
    "Ephemeral-Key: mli04UOCjjW5HJ9mLsp98XUxhGbMrrPed8v24_DBEkg\r\n"
    "Key-Commitment: 6qOs9DWTQuoTwRxfpHOLK_9NB5SjDFiFNnBM-pS-a84\r\n"
    "Proof: inhHoADIzjukdqI06RPc5pbhVvr85J_Fyt7QXNmbdjOp2AkhH0Tj70c_zddsxCexPsg_4\r\n"
    " 6gJapceN9hnG42QDA\r\n"
    "\r\n"
    "--=_recrypt_000102030405060708090a0b\r\n"
    "Content-Type: application/octet-stream; name=\"message.rcx\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: inline; filename=\"message.rcx\"\r\n"
    "\r\n"
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXwQUop1aa/7ortJc8zhhN1CIYK4pRv0aDwqBsSXV15mzz\r\n"
    "VgAnQjilOs0RjCBMqk2sD5ufXQGo50iEJ6S7E/bwL8FTqQ2ckU1sHdAZHqiQ4+vbT3TaQefiS/ac\r\n"
    "wJOnZk3zK0wAa0/P/Di1Glwl1Zk/fy2CDQyC0oXC8kqunpy53uav41S2q3arYGf9+vXDhblJRBbk\r\n"
    "hKKZoVy1MKL4GXbZK8oVj8A4isNXbpUm46GQ20P7Fjt0i79gxWw4rVg/8dV7Sjyjx4UZhe11QcWP\r\n"
    "0/msXk33pZXkY+H5QHtQCleTrWRVREaSpgEpjPk6mItP+NvKqIyl9zTtk6A3+p2LZgD2msUS/QXJ\r\n"
    "KZl5UWOb0kUQGWokYiGRbuFcQaRygoOyVm8HR3JdEUnKLeLWKKz0dh8HoTtrTcDHex3FA0isbMEy\r\n"
    "4SBaWIgroYQpOKK+XDkPhZudC38fdGbASeEGqBdZXBJPo4HYukqMdA7kL1NKx0CmJ++vhSl/NEeS\r\n"
    "vIqosT9zWFTJnGHfPDG7XcQcYhEsSbYjmPGfNNj5fZymzqgomWShXaoHnOVGLprCvzMHWOMq5FUU\r\n"
    "rGjqnk2ga9nlOt9ggnt+8gtl0wsv6yhpxra9eIuVLUIXWbXAwM9YKBSxFrv6kDbXDut862NlTxEj\r\n"
    "1p89HL7Fj+98zcGKbSYOLGKjPNDyjcU0AptN4BJ54YxIpQeqrFazQA==\r\n"
    "--=_recrypt_000102030405060708090a0b--\r\n";
static const char EXP_MIME_LIST_KEY_FIELD[] =
    "Recrypt-List-Key: recrypt1.listkey.ARNmcmllbmRzQGV4YW1wbGUub3JnAAAAAAAAAAdqD\r\n"
    " GQSZWBloweQIIuKzJaZJ-3IoBRNHQ03IiOhuKXoegAAAABku1qAAAAAAGtJ0gDAUMVjekT6hin_\r\n"
    " 88zM4jAMs2KmPZnZX8VBRSZvQzJEWi09vR3kN1OrSRFaTb80SzH3rR7350N8QXyxtJ9DSkGwHfL\r\n"
    " h6OJw3Z1DTwyyT_wRfGTwbJ_TMabZM8dnTz-TFALAAQsR\r\n";
static const char EXP_MIME_RECRYPTED[] =
    "From: Alice <alice@example.org>\r\n"
    "To: friends@example.org\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <vector-1@example.org>\r\n"
    "Subject: [recrypt] encrypted message\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/encrypted;\r\n"
    " protocol=\"application/vnd.recrypt.control\";\r\n"
    " boundary=\"=_recrypt_000102030405060708090a0b\"\r\n"
    "\r\n"
    "This is an end-to-end encrypted message (recrypt). Your mail program needs\r\n"
    "the recrypt client to open it.\r\n"
    "\r\n"
    "--=_recrypt_000102030405060708090a0b\r\n"
    "Content-Type: application/vnd.recrypt.control\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "Content-Description: recrypt control data\r\n"
    "\r\n"
    "Version: 1\r\n"
    "Suite: 1\r\n"
    "List-Id: YCSZBRZyTey_lsSfPix6YBiz5KBgmFENkB8kNP05UVE\r\n"
    "Epoch: 7\r\n"
    "Ephemeral-Key: mli04UOCjjW5HJ9mLsp98XUxhGbMrrPed8v24_DBEkg\r\n"
    "Key-Commitment: 6qOs9DWTQuoTwRxfpHOLK_9NB5SjDFiFNnBM-pS-a84\r\n"
    "Proof: inhHoADIzjukdqI06RPc5pbhVvr85J_Fyt7QXNmbdjOp2AkhH0Tj70c_zddsxCexPsg_4\r\n"
    " 6gJapceN9hnG42QDA\r\n"
    "Stanza: OGolCXQHUmiS7WjPf7K_OUylW_Jxc9A1V8Qc1rB68UwBZuZvEizI0476kIwryYtFxrfI\r\n"
    " 7hux6Ly1DnEdgZJvGAANHUlaqSo5zz43QTkbEb0u4P9QnwzOsq3meS34XBj9QhOQyB5oW8Hw_uL\r\n"
    " h-xj-ETpd6nnTE8lb2MKO650SBDJvm478gKhvb_TTIZgYpcow6IloRAJeWSGL72_8ty3GMc21Lw\r\n"
    " Sv5i-ps9C2sEaMC0qprVwcv5uYK9nl0lsY-eD7vYJfJCaK6OkujdEWFCJ29Y4HQ9j0O2pqBf_1D\r\n"
    " IcWezqgBkq7sQ85Y95MYvjSVQBQj-lV3H982BCXkobmYOrkfUm_2GRa2zT9_5BzP3dLHBwP2UqR\r\n"
    " v1X2OZX22Z6BI8a9do3NJ3UrYWPh5cWJGiapfSgTL6q5_V5g2YcuGfDCo7TpCn0j0I9THwOAE1E\r\n"
    " u2VO140RXkg-TRbnm-hLtNbNuQLrLvNJG3JwBxpwBxzwwga3A1-0LU7l2uHa-fbiqMht9Dtlhyq\r\n"
    " jz594\r\n"
    "\r\n"
    "--=_recrypt_000102030405060708090a0b\r\n"
    "Content-Type: application/octet-stream; name=\"message.rcx\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: inline; filename=\"message.rcx\"\r\n"
    "\r\n"
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXwQUop1aa/7ortJc8zhhN1CIYK4pRv0aDwqBsSXV15mzz\r\n"
    "VgAnQjilOs0RjCBMqk2sD5ufXQGo50iEJ6S7E/bwL8FTqQ2ckU1sHdAZHqiQ4+vbT3TaQefiS/ac\r\n"
    "wJOnZk3zK0wAa0/P/Di1Glwl1Zk/fy2CDQyC0oXC8kqunpy53uav41S2q3arYGf9+vXDhblJRBbk\r\n"
    "hKKZoVy1MKL4GXbZK8oVj8A4isNXbpUm46GQ20P7Fjt0i79gxWw4rVg/8dV7Sjyjx4UZhe11QcWP\r\n"
    "0/msXk33pZXkY+H5QHtQCleTrWRVREaSpgEpjPk6mItP+NvKqIyl9zTtk6A3+p2LZgD2msUS/QXJ\r\n"
    "KZl5UWOb0kUQGWokYiGRbuFcQaRygoOyVm8HR3JdEUnKLeLWKKz0dh8HoTtrTcDHex3FA0isbMEy\r\n"
    "4SBaWIgroYQpOKK+XDkPhZudC38fdGbASeEGqBdZXBJPo4HYukqMdA7kL1NKx0CmJ++vhSl/NEeS\r\n"
    "vIqosT9zWFTJnGHfPDG7XcQcYhEsSbYjmPGfNNj5fZymzqgomWShXaoHnOVGLprCvzMHWOMq5FUU\r\n"
    "rGjqnk2ga9nlOt9ggnt+8gtl0wsv6yhpxra9eIuVLUIXWbXAwM9YKBSxFrv6kDbXDut862NlTxEj\r\n"
    "1p89HL7Fj+98zcGKbSYOLGKjPNDyjcU0AptN4BJ54YxIpQeqrFazQA==\r\n"
    "--=_recrypt_000102030405060708090a0b--\r\n";
static const char EXP_MIME_OPENED[] =
    "Recrypt-Verdict: signed; member=alice@example.org; device=MA5D-5HFR-PFZS-2IJ7-3S2H-LJPC-3M2E; list=friends@example.org; epoch=7; path=unverified\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: friends@example.org\r\n"
    "Subject: test vector\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <vector-1@example.org>\r\n"
    "\r\n"
    "Hello, list.\r\n";

static int fd_with(const char *text)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void print_text(const char *name, const buf_t *got)
{
    printf("TEXT %s\n", name);
    for (size_t i = 0; i < got->len; i++) {
        if (got->p[i] == '\r')
            printf("\\r");
        else
            putchar(got->p[i]);
    }
    printf("ENDTEXT\n");
    mismatches++;
}

/* Text before the first line starting with "--=_recrypt_", after the
 * header block: the MIME preamble. */
static void split_preamble(const char *t, size_t len, size_t *pre, size_t *rest)
{
    const char *h = memmem(t, len, "\r\n\r\n", 4);
    const char *b = memmem(t, len, "\n--=_recrypt_", 13);
    assert_non_null(h);
    assert_non_null(b);
    *pre = (size_t)(h - t) + 4;
    *rest = (size_t)(b - t) + 1;
    assert_true(*rest >= *pre);
}

/* The outer message as the service writes it. The preamble carries no
 * data and receivers ignore it: only its words are compared (see the bug
 * noted in FORMAT.md section 12); everything else byte for byte. */
static void check_recrypted(const char *name, const buf_t *got, const char *want)
{
    size_t gp, gr, wp, wr, wl = strlen(want);
    const char *g = (const char *)got->p;
    split_preamble(g, got->len, &gp, &gr);
    split_preamble(want, wl, &wp, &wr);
    char *a = strndup(g + gp, gr - gp), *b = strndup(want + wp, wr - wp), *d;
    assert_non_null(a);
    assert_non_null(b);
    for (char *s = a, *x = a;; s++) /* drop CR and LF */
        if (*s != '\r' && *s != '\n' && !(*x++ = *s))
            break;
    for (char *s = b, *x = b;; s++)
        if (*s != '\r' && *s != '\n' && !(*x++ = *s))
            break;
    d = a;
    if (gp != wp || memcmp(g, want, gp) != 0 || strcmp(a, b) != 0 ||
        got->len - gr != wl - wr || memcmp(g + gr, want + wr, wl - wr) != 0)
        print_text(name, got);
    free(d);
    free(b);
}

static void check_text(const char *name, const buf_t *got, const char *want)
{
    if (got->len != strlen(want) || memcmp(got->p, want, got->len) != 0) {
        printf("TEXT %s\n", name);
        for (size_t i = 0; i < got->len; i++) {
            if (got->p[i] == '\r')
                printf("\\r");
            else
                putchar(got->p[i]);
        }
        printf("ENDTEXT\n");
        mismatches++;
    }
}

static void test_mime_sealed(void **state)
{
    (void)state;
    rc_mail *m = NULL;
    rc_error err;
    uint8_t envb[RC_ENVELOPE_BYTES];
    int fd = fd_with(EXP_MIME_SEALED);
    assert_int_equal(rc_mail_parse(&m, fd, &err), 0);
    close(fd);
    assert_int_equal(rc_envelope_to_bytes(envb, rc_mail_envelope(m)), 0);
    check_hex("mime_envelope", envb, sizeof envb, EXP_ENVELOPE);
    assert_int_equal(rc_mail_stanza_count(m), 0);
    assert_int_equal(rc_mail_date(m), IN_DATE);
    assert_string_equal(rc_mail_message_id(m), IN_MESSAGE_ID);
    assert_null(rc_mail_list_key(m));
    /* the data part is the signed stream vector in base64 */
    {
        const char *d = strstr(EXP_MIME_SEALED, "filename=\"message.rcx\"\r\n\r\n");
        const char *e = d ? strstr(d, "--=_recrypt_") : NULL;
        uint8_t bin[1024];
        size_t blen = 0;
        assert_non_null(e);
        d += 26;
        assert_int_equal(sodium_base642bin(bin, sizeof bin, d, (size_t)(e - d), "\r\n", &blen,
                                           NULL, sodium_base64_VARIANT_ORIGINAL),
                         0);
        check_hex("mime_data_part", bin, blen, EXP_STREAM_SIGNED);
    }
    assert_int_equal(rc_mail_check_post(m, IN_LIST_ADDRESS, IN_EPOCH, F.ls.A, IN_DATE + 60,
                                        7 * 86400, 3600, &err),
                     0);

    /* the service's rewrite with one device entry (the fixed W) */
    rc_device_entry e;
    buf_t out = {0};
    size_t nw = 0;
    memset(&e, 0, sizeof e);
    memcpy(e.r, F.entry.r, 32);
    memcpy(e.K, F.entry.K, 32);
    e.W_len = strlen(EXP_W_FIXED) / 2;
    unhex(e.W, e.W_len, EXP_W_FIXED);
    e.enrolled_at = IN_ENROLLED_AT;
    for (int table = 0; table <= 1; table++) {
        out.len = 0;
        assert_int_equal(rc_mail_write_header(m, buf_sink, &out, &err), 0);
        assert_int_equal(rc_mail_write_recrypted_body(m, &e, 1, table, buf_sink, &out, &nw, &err),
                         0);
        assert_int_equal(nw, 1);
        check_recrypted("mime_recrypted", &out, EXP_MIME_RECRYPTED);
    }
    /* a device enrolled after the post's Date gets no stanza */
    e.enrolled_at = IN_DATE + 1;
    out.len = 0;
    assert_int_equal(rc_mail_write_recrypted_body(m, &e, 1, 0, buf_sink, &out, &nw, &err), 0);
    assert_int_equal(nw, 0);
    rc_mail_free(m);
    free(out.p);
    done_checks();
}

/* Replace the first occurrence of `from` with `to` (same length). */
static char *replaced(const char *text, const char *from, const char *to)
{
    char *s = strdup(text), *p;
    assert_non_null(s);
    p = strstr(s, from);
    assert_non_null(p);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(p, to, strlen(to));
    return s;
}

static void test_mime_versions(void **state)
{
    (void)state;
    rc_mail *m = NULL;
    rc_error err;
    char *s;
    int fd;
    s = replaced(EXP_MIME_SEALED, "Version: 1\r\n", "Version: 2\r\n");
    fd = fd_with(s);
    assert_int_equal(rc_mail_parse(&m, fd, &err), RC_E_VERSION);
    close(fd);
    free(s);
    s = replaced(EXP_MIME_SEALED, "Suite: 1\r\n", "Suite: 9\r\n");
    fd = fd_with(s);
    assert_int_equal(rc_mail_parse(&m, fd, &err), RC_E_VERSION);
    close(fd);
    free(s);
    /* another protocol parameter: not a recrypt message */
    s = replaced(EXP_MIME_SEALED, "vnd.recrypt.control\";", "vnd.recrypt.kontrol\";");
    fd = fd_with(s);
    assert_int_equal(rc_mail_parse(&m, fd, &err), RC_E_FORMAT);
    close(fd);
    free(s);
}

static void test_mime_open(void **state)
{
    (void)state;
    rc_mail *m = NULL;
    rc_error err;
    rc_open_result res;
    rc_statement st2;
    buf_t out = {0};
    char *text = malloc(strlen(EXP_MIME_LIST_KEY_FIELD) + strlen(EXP_MIME_RECRYPTED) + 1);
    assert_non_null(text);
    strcpy(text, EXP_MIME_LIST_KEY_FIELD);
    strcat(text, EXP_MIME_RECRYPTED);
    int fd = fd_with(text), stage = fd_with("");
    free(text);
    assert_int_equal(rc_mail_parse(&m, fd, &err), 0);
    close(fd);
    assert_int_equal(rc_mail_stanza_count(m), 1);
    check_hex("mime_stanza_R", rc_mail_stanzas(m)[0].R, 32, EXP_R);
    assert_non_null(rc_mail_list_key(m));
    assert_int_equal(rc_statement_decode(&st2, rc_mail_list_key(m), &err), 0);
    assert_memory_equal(st2.sig, F.st.sig, 64);
    assert_int_equal(rc_mail_open(m, &F.st, &F.dev, stage, buf_sink, &out, &res, &err), 0);
    assert_int_equal(res.is_signed, 1);
    check_text("mime_opened", &out, EXP_MIME_OPENED);
    close(stage);
    rc_mail_free(m);
    free(out.p);
    done_checks();
}

/* rc_mail_seal draws t, u, the stream header and the boundary at random:
 * compare its output line by line with the sealed example, values masked. */
static void test_mime_seal_shape(void **state)
{
    (void)state;
    rc_error err;
    buf_t out = {0};
    int fd = fd_with(IN_MESSAGE);
    assert_int_equal(rc_mail_seal(fd, &F.st, &F.dev, &F.cert, IN_DATE + 5, buf_sink, &out, &err),
                     0);
    close(fd);
    assert_int_equal(buf_sink(&out, (const uint8_t *)"", 1), 0); /* NUL */
    char *got = (char *)out.p, *want = strdup(EXP_MIME_SEALED);
    char *gs = NULL, *ws = NULL;
    char *g = strtok_r(got, "\n", &gs), *w = strtok_r(want, "\n", &ws);
    char bnd[64] = "";
    int in_data = 0;
    for (; g && w; g = strtok_r(NULL, "\n", &gs), w = strtok_r(NULL, "\n", &ws)) {
        if (strncmp(w, " boundary=\"", 11) == 0) {
            assert_int_equal(strlen(g), strlen(w));
            snprintf(bnd, sizeof bnd, "--%.*s", (int)(strlen(g) - 13), g + 11);
            assert_memory_equal(g, " boundary=\"=_recrypt_", 21);
        } else if (strncmp(w, "--=_recrypt_", 12) == 0) {
            assert_memory_equal(g, bnd, strlen(bnd));
            assert_int_equal(strlen(g), strlen(w));
            in_data = 0;
        } else if (in_data || w[0] == ' ') {
            assert_int_equal(strlen(g), strlen(w));
        } else if (strncmp(w, "Ephemeral-Key: ", 15) == 0 ||
                   strncmp(w, "Key-Commitment: ", 16) == 0 || strncmp(w, "Proof: ", 7) == 0) {
            assert_int_equal(strlen(g), strlen(w));
            assert_memory_equal(g, w, (size_t)(strchr(w, ':') - w + 2));
        } else {
            assert_string_equal(g, w);
            if (strcmp(w, "Content-Disposition: inline; filename=\"message.rcx\"\r") == 0)
                in_data = 1;
        }
    }
    assert_null(g);
    assert_null(w);
    free(want);
    free(out.p);
}

/* A signed post must come From the certificate's member: rc_mail_seal
 * refuses another From (and writes nothing), because every reader refuses
 * such a post; RC_SEAL_ANY_FROM makes one anyway, and rc_mail_open indeed
 * refuses it with RC_E_SIGNATURE, releasing nothing. Unsigned, the same
 * message seals. */
static void test_mime_seal_from_is_signer(void **state)
{
    (void)state;
    rc_error err;
    buf_t out = {0}, opened = {0};
    char *msg = replaced(IN_MESSAGE, "From: Alice <alice@example.org>",
                         "From: Bosse <bosse@example.org>");
    int fd = fd_with(msg);
    assert_int_equal(rc_mail_seal(fd, &F.st, &F.dev, &F.cert, IN_DATE + 5, buf_sink, &out, &err),
                     RC_E_POLICY);
    assert_int_equal(out.len, 0);
    assert_non_null(strstr(err.msg, "From bosse@example.org, but this device signs as "
                                    "alice@example.org"));
    close(fd);
    /* No single From address: refused too. */
    char *nofrom = replaced(IN_MESSAGE, "From: Alice <alice@example.org>",
                            "Xrom: Alice <alice@example.org>");
    fd = fd_with(nofrom);
    assert_int_equal(rc_mail_seal(fd, &F.st, &F.dev, &F.cert, IN_DATE + 5, buf_sink, &out, &err),
                     RC_E_POLICY);
    assert_int_equal(out.len, 0);
    close(fd);
    free(nofrom);
    /* Unsigned: fine. */
    fd = fd_with(msg);
    assert_int_equal(rc_mail_seal(fd, &F.st, NULL, NULL, IN_DATE + 5, buf_sink, &out, &err), 0);
    assert_true(out.len > 0);
    close(fd);
    /* Signed anyway (the test-only flag): the reader refuses it. */
    out.len = 0;
    fd = fd_with(msg);
    assert_int_equal(rc_mail_seal_flags(fd, &F.st, &F.dev, &F.cert, IN_DATE + 5, RC_SEAL_ANY_FROM,
                                        buf_sink, &out, &err),
                     0);
    close(fd);
    assert_int_equal(buf_sink(&out, (const uint8_t *)"", 1), 0); /* NUL */
    rc_mail *m = NULL;
    fd = fd_with((const char *)out.p);
    assert_int_equal(rc_mail_parse(&m, fd, &err), 0);
    close(fd);
    rc_device_entry e;
    memset(&e, 0, sizeof e);
    memcpy(e.r, F.entry.r, 32);
    memcpy(e.K, F.entry.K, 32);
    memcpy(e.W, F.entry.W, F.entry.W_len);
    e.W_len = F.entry.W_len;
    e.enrolled_at = IN_ENROLLED_AT;
    buf_t rec = {0};
    size_t nw = 0;
    assert_int_equal(rc_mail_write_header(m, buf_sink, &rec, &err), 0);
    assert_int_equal(rc_mail_write_recrypted_body(m, &e, 1, 0, buf_sink, &rec, &nw, &err), 0);
    assert_int_equal(nw, 1);
    rc_mail_free(m);
    assert_int_equal(buf_sink(&rec, (const uint8_t *)"", 1), 0);
    fd = fd_with((const char *)rec.p);
    assert_int_equal(rc_mail_parse(&m, fd, &err), 0);
    close(fd);
    int stage = fd_with("");
    rc_open_result res;
    assert_int_equal(rc_mail_open(m, &F.st, &F.dev, stage, buf_sink, &opened, &res, &err),
                     RC_E_SIGNATURE);
    assert_non_null(strstr(err.msg, "signed by alice@example.org but its From is another"));
    assert_int_equal(opened.len, 0);
    close(stage);
    rc_mail_free(m);
    free(msg);
    free(out.p);
    free(rec.p);
    free(opened.p);
}


/* ---- issue 13: the outer grammar of FORMAT.md §9.3 (and §11.7) ---- */

/* FORMAT.md §9.3: "date-value = *WSP [ day-name "," *WSP ] day 1*WSP month
 * 1*WSP year 1*WSP hour ":" minute [ ":" second ] 1*WSP zone [ 1*WSP
 * comment ] *WSP"; "A day name, when present, must be the weekday of the
 * date"; "Not accepted: two-digit years, alphabetic zones other than UT
 * and GMT". -1: refused. */
static void test_grammar_date(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        long long t;
    } cases[] = {
        {"Tue, 14 Nov 2023 22:13:20 +0000", 1700000000},
        {"14 Nov 2023 22:13:20 +0000", 1700000000},
        {"  tue,14 nov 2023 22:13:20 GMT  ", 1700000000},
        {"Tue, 14 Nov 2023 22:13:20 UT", 1700000000},
        {"Tue, 14 Nov 2023 23:43:20 +0130", 1700000000},
        {"Tue, 14 Nov 2023 17:13:20 -0500 (EST)", 1700000000},
        {"Tue, 14 Nov 2023 22:13 +0000", 1699999980},
        {"Tue, 14 Nov 2023 22:13:60 +0000", 1700000040},
        {"Thu, 29 Feb 2024 00:00:00 +0000", 1709164800},
        {"Thu, 1 Jan 1970 00:00:00 +0000", 0},
        {"Wed, 14 Nov 2023 22:13:20 +0000", -1}, /* not the weekday of the date */
        {"14 Nov 23 22:13:20 +0000", -1},         /* two-digit year */
        {"14 Nov 2023 22:13:20 EST", -1},         /* alphabetic zone */
        {"14 Nov 2023 22:13:20 Z", -1},
        {"14 Nov 2023 22:13:20", -1},             /* no zone */
        {"31 Nov 2023 22:13:20 +0000", -1},       /* no such day */
        {"29 Feb 2023 22:13:20 +0000", -1},
        {"14 Nov 2023 24:00:00 +0000", -1},
        {"14 Nov 2023 22:13:20 +2400", -1},
        {"14 Nov 2023 22:13:20 +0000 junk", -1},
        {"14 Nov 2023 22:13:20 +0000 (a (nested) one)", -1},
        {"Tue 14 Nov 2023 22:13:20 +0000", -1},   /* day name without comma */
        {"14 November 2023 22:13:20 +0000", -1},
        {"Thu, 1 Jan 1970 00:00:00 +0100", -1},   /* before 1970 */
        {"", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t t = 0;
        rc_error err;
        int rc = rc_date_parse(cases[i].v, &t, &err);
        if (cases[i].t < 0) {
            if (rc != RC_E_FORMAT)
                fail_msg("Date \"%s\" accepted as %llu", cases[i].v, (unsigned long long)t);
            assert_true(strncmp(err.msg, "the Date", 8) == 0);
        } else {
            if (rc != 0)
                fail_msg("Date \"%s\" refused: %s", cases[i].v, err.msg);
            assert_int_equal(t, (uint64_t)cases[i].t);
        }
    }
}

/* FORMAT.md §7.3, §9.3: "A field outside that grammar is refused, never
 * repaired: <x@y (no >) and junk <a@b> (text before the <) are
 * RC_E_FORMAT"; the value is id-left "@" id-right, at most 984 octets. */
static void test_grammar_msgid(void **state)
{
    (void)state;
    static const struct {
        const char *v, *id; /* id NULL: refused */
    } cases[] = {
        {"<vector-1@example.org>", "vector-1@example.org"},
        {"  <a.b+c@d.e>\t", "a.b+c@d.e"},
        {"<x@[192.0.2.1]>", "x@[192.0.2.1]"},
        {"<!#$%&'*+-/=?^_`{|}~@x>", "!#$%&'*+-/=?^_`{|}~@x"},
        {"<x@y", NULL},
        {"junk <a@b>", NULL},
        {"<a@b> junk", NULL},
        {"<a@b> (comment)", NULL},
        {"a@b", NULL},
        {"<a@b@c>", NULL},
        {"<a..b@c>", NULL},
        {"<.a@c>", NULL},
        {"<a.@c>", NULL},
        {"<\"q\"@b>", NULL},
        {"<a @b>", NULL},
        {"<@b>", NULL},
        {"<a@>", NULL},
        {"<a@[x[y]>", NULL},
        {"<a@[x>", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *id = NULL;
        rc_error err;
        int rc = rc_msgid_parse(cases[i].v, &id, &err);
        if (!cases[i].id) {
            if (rc != RC_E_FORMAT)
                fail_msg("Message-ID \"%s\" accepted as \"%s\"", cases[i].v, id ? id : "");
            assert_null(id);
            assert_true(strncmp(err.msg, "the Message-ID", 14) == 0);
        } else {
            if (rc != 0)
                fail_msg("Message-ID \"%s\" refused: %s", cases[i].v, err.msg);
            assert_string_equal(id, cases[i].id);
            free(id);
        }
    }
    /* 984 octets between the brackets: the longest. */
    char v[1100], *id = NULL;
    memset(v, 'a', sizeof v);
    v[0] = '<';
    v[981] = '@';
    v[985] = '>';
    v[986] = '\0';
    assert_int_equal(rc_msgid_parse(v, &id, NULL), 0);
    assert_int_equal(strlen(id), 984);
    free(id);
    v[985] = 'a'; /* 985 octets */
    v[986] = '>';
    v[987] = '\0';
    assert_int_equal(rc_msgid_parse(v, &id, NULL), RC_E_FORMAT);
}

/* The sealed post of §11.6 with edits; RC_E_FORMAT and a message with
 * what, or 0 when what is NULL. */
static void parse_edited(const char *sealed, const char *from, const char *to, const char *what)
{
    const char *at = strstr(sealed, from);
    assert_non_null(at);
    char *text = malloc(strlen(sealed) + strlen(to) + 1);
    assert_non_null(text);
    sprintf(text, "%.*s%s%s", (int)(at - sealed), sealed, to, at + strlen(from));
    int fd = fd_with(text);
    rc_mail *m = NULL;
    rc_error err;
    int rc = rc_mail_parse(&m, fd, &err);
    close(fd);
    free(text);
    rc_mail_free(m);
    if (!what) {
        if (rc)
            fail_msg("refused: %s", err.msg);
        return;
    }
    if (rc != RC_E_FORMAT || !strstr(err.msg, what))
        fail_msg("\"%s\" -> \"%s\": rc %d \"%s\", expected \"%s\"", from, to, rc,
                 rc ? err.msg : "", what);
}

/* FORMAT.md §9.3, what readers refuse, on the sealed post of §11.6: "no
 * mbox From line before the first field"; "exactly one Date, one
 * Message-ID, one From, one Content-Type, one MIME-Version"; "every byte
 * of every field 7-bit and not NUL"; the data-part grammar ("= only in
 * the very last group", "No other byte (!, ...)", "An empty data part ...
 * is refused"); "The closing boundary line must be there". */
static void test_grammar_outer(void **state)
{
    (void)state;
    buf_t out = {0};
    int fd = fd_with(IN_MESSAGE);
    rc_error err;
    assert_int_equal(rc_mail_seal(fd, &F.st, NULL, NULL, IN_DATE + 5, buf_sink, &out, &err), 0);
    close(fd);
    char *sealed = calloc(1, out.len + 1);
    assert_non_null(sealed);
    memcpy(sealed, out.p, out.len);
    parse_edited(sealed, "From: Alice", "From: Alice", NULL);
    parse_edited(sealed, "From: Alice", "From alice@example.org Tue Nov 14 22:13:20 2023\r\nFrom: Alice",
                 "mbox 'From ' line");
    parse_edited(sealed, "MIME-Version: 1.0\r\n",
                 "MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; "
                 "protocol=\"application/vnd.recrypt.control\"; boundary=x\r\n",
                 "2 Content-Type fields");
    parse_edited(sealed, "MIME-Version: 1.0", "MIME-Version: 1.1", "MIME-Version is not 1.0");
    parse_edited(sealed, "Subject: [recrypt]", "Subject: [r\xe9" "crypt]", "8-bit byte (0xE9)");
    parse_edited(sealed, "Message-ID: <vector-1@example.org>", "Message-ID: <vector-1@example.org",
                 "malformed Message-ID");
    parse_edited(sealed, "Message-ID: <vector-1@example.org>",
                 "Message-ID: junk <vector-1@example.org>", "malformed Message-ID");
    parse_edited(sealed, "+0000\r\nMessage-ID", "EST\r\nMessage-ID", "zone is not");
    parse_edited(sealed, "protocol=\"application/vnd.recrypt.control\"",
                 "protocol*0=\"application/vnd.\"; protocol*1=\"recrypt.control\"", "as such");
    parse_edited(sealed, "filename=\"message.rcx\"\r\n\r\n", "filename=\"message.rcx\"\r\n\r\n!",
                 "not base64 (0x21");
    /* The closing boundary cut off: the message ends inside the data part. */
    char closing[80];
    const char *cl = strstr(sealed, "boundary=\"");
    assert_non_null(cl);
    snprintf(closing, sizeof closing, "\r\n--%.34s--\r\n", cl + 10);
    parse_edited(sealed, closing, "\r\n", "no closing boundary line");
    char after[120];
    snprintf(after, sizeof after, "%sjunk\r\n", closing);
    parse_edited(sealed, closing, after, "text after its closing boundary");
    free(sealed);
    free(out.p);
}

/* FORMAT.md §9.2: "Every line it writes ... ends with the line ending of
 * the message's first header line: one line ending in the whole message."
 * A CRLF post whose data part came with LF lines, and an LF post whose
 * data part came with CRLF: the recrypted body has one line ending. */
static void test_recrypted_line_endings(void **state)
{
    (void)state;
    buf_t out = {0};
    int fd = fd_with(IN_MESSAGE);
    rc_error err;
    assert_int_equal(rc_mail_seal(fd, &F.st, NULL, NULL, IN_DATE + 5, buf_sink, &out, &err), 0);
    close(fd);
    for (int lf_header = 0; lf_header < 2; lf_header++) {
        /* Rewrite: the header and parts in one ending, the data lines in the other. */
        char *t = calloc(1, out.len * 2 + 1), *data = strstr((char *)out.p, "rcx\"\r\n\r\n");
        assert_non_null(t);
        assert_non_null(data);
        data += 8;
        char *data_end = strstr(data, "\r\n--=_recrypt_");
        size_t o = 0;
        for (char *p = (char *)out.p; p < (char *)out.p + out.len; p++) {
            int in_data = p >= data && p < data_end;
            int want_lf = in_data ? !lf_header : lf_header;
            if (*p == '\r' && p[1] == '\n' && want_lf)
                continue;
            t[o++] = *p;
        }
        fd = fd_with(t);
        rc_mail *m = NULL;
        assert_int_equal(rc_mail_parse(&m, fd, &err), 0);
        buf_t rec = {0};
        assert_int_equal(rc_mail_write_recrypted_body(m, NULL, 0, 0, buf_sink, &rec, NULL, &err), 0);
        size_t lf = 0, crlf = 0;
        for (size_t i = 0; i < rec.len; i++)
            if (rec.p[i] == '\n') {
                if (i && rec.p[i - 1] == '\r')
                    crlf++;
                else
                    lf++;
            }
        assert_true(lf + crlf > 10);
        if (lf_header)
            assert_int_equal(crlf, 0);
        else
            assert_int_equal(lf, 0);
        rc_mail_free(m);
        close(fd);
        free(t);
        free(rec.p);
    }
    free(out.p);
}

/* FORMAT.md §9.1: "exactly one From whose bytes are 7-bit (no NUL): the
 * outer header shows it"; "so does a Sender, To, Cc, Reply-To, In-Reply-To
 * or References field that holds an 8-bit byte or a NUL" (it stays
 * inside only). */
static void test_seal_outer_7bit(void **state)
{
    (void)state;
    rc_error err;
    buf_t out = {0};
    char *msg = malloc(strlen(IN_MESSAGE) + 64);
    assert_non_null(msg);
    sprintf(msg, "Cc: J\xc3\xb6rg <joerg@example.org>\r\n%s", IN_MESSAGE);
    int fd = fd_with(msg);
    assert_int_equal(rc_mail_seal(fd, &F.st, NULL, NULL, IN_DATE + 5, buf_sink, &out, &err), 0);
    close(fd);
    char *text = calloc(1, out.len + 1);
    assert_non_null(text);
    memcpy(text, out.p, out.len);
    assert_null(strstr(text, "Cc:"));          /* inside only */
    assert_non_null(strstr(text, "From: Alice")); /* the 7-bit From is outside */
    fd = fd_with(text);
    rc_mail *m = NULL;
    assert_int_equal(rc_mail_parse(&m, fd, &err), 0); /* readers take it */
    rc_mail_free(m);
    close(fd);
    free(text);
    free(out.p);
    out = (buf_t){0};
    /* An 8-bit From, no From, two Froms: refused, nothing written. */
    static const char *const froms[] = {"From: J\xc3\xb6rg <alice@example.org>\r\n", "",
                                        "From: a@example.org\r\nFrom: b@example.org\r\n"};
    static const char *const why[] = {"8-bit", "no From field", "more than one From"};
    for (int i = 0; i < 3; i++) {
        const char *rest = strstr(IN_MESSAGE, "\r\n") + 2; /* IN_MESSAGE less its From */
        char *m2 = malloc(strlen(froms[i]) + strlen(rest) + 1);
        assert_non_null(m2);
        sprintf(m2, "%s%s", froms[i], rest);
        fd = fd_with(m2);
        assert_int_equal(rc_mail_seal(fd, &F.st, NULL, NULL, IN_DATE + 5, buf_sink, &out, &err),
                         RC_E_FORMAT);
        assert_non_null(strstr(err.msg, why[i]));
        assert_int_equal(out.len, 0);
        close(fd);
        free(m2);
    }
    free(msg);
    free(out.p);
}

/* Replace the first occurrence of `from` with `to`, any length. */
static char *replaced_any(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    assert_non_null(p);
    char *s = malloc(strlen(text) - strlen(from) + strlen(to) + 1);
    assert_non_null(s);
    memcpy(s, text, (size_t)(p - text));
    strcpy(s + (p - text), to);
    strcat(s, p + strlen(from));
    return s;
}

/* Seal IN_MESSAGE with its From line replaced, signed by Alice whatever
 * the From (RC_SEAL_ANY_FROM), recrypt it for Alice's device, and open it:
 * the rc_mail_open code; the opened message in *opened. */
static int open_signed_from(const char *from_line, buf_t *opened, rc_error *err)
{
    buf_t out = {0}, rec = {0};
    char *msg = replaced_any(IN_MESSAGE, "From: Alice <alice@example.org>", from_line);
    int fd = fd_with(msg);
    assert_int_equal(rc_mail_seal_flags(fd, &F.st, &F.dev, &F.cert, IN_DATE + 5, RC_SEAL_ANY_FROM,
                                        buf_sink, &out, err),
                     0);
    close(fd);
    assert_int_equal(buf_sink(&out, (const uint8_t *)"", 1), 0);
    rc_mail *m = NULL;
    fd = fd_with((const char *)out.p);
    assert_int_equal(rc_mail_parse(&m, fd, err), 0);
    close(fd);
    rc_device_entry e;
    memset(&e, 0, sizeof e);
    memcpy(e.r, F.entry.r, 32);
    memcpy(e.K, F.entry.K, 32);
    memcpy(e.W, F.entry.W, F.entry.W_len);
    e.W_len = F.entry.W_len;
    e.enrolled_at = IN_ENROLLED_AT;
    size_t nw = 0;
    assert_int_equal(rc_mail_write_header(m, buf_sink, &rec, err), 0);
    assert_int_equal(rc_mail_write_recrypted_body(m, &e, 1, 0, buf_sink, &rec, &nw, err), 0);
    rc_mail_free(m);
    assert_int_equal(buf_sink(&rec, (const uint8_t *)"", 1), 0);
    fd = fd_with((const char *)rec.p);
    assert_int_equal(rc_mail_parse(&m, fd, err), 0);
    close(fd);
    int stage = fd_with("");
    rc_open_result res;
    int rc = rc_mail_open(m, &F.st, &F.dev, stage, buf_sink, opened, &res, err);
    close(stage);
    rc_mail_free(m);
    sodium_memzero(&res, sizeof res);
    free(msg);
    free(out.p);
    free(rec.p);
    return rc;
}

/* FORMAT §9.5 step 4: "for a signed post, the inner From holds exactly one
 * mailbox (RFC 5322 `mailbox`, not a `group`, not a list) whose lowercased
 * address equals the certificate's (RC_E_SIGNATURE); a group is refused even
 * when it holds exactly the signer's mailbox, and so is an empty group."
 * The sealer refuses to make such a post (RC_E_POLICY). */
static void test_mime_inner_from_group(void **state)
{
    (void)state;
    static const struct {
        const char *from;
        int want;
    } cases[] = {
        {"From: Alice <alice@example.org>", 0},
        {"From: alice@example.org", 0},
        {"From: \"Alice\" <ALICE@example.org>", 0},
        {"From: team: Alice <alice@example.org>;", RC_E_SIGNATURE},
        {"From: team: alice@example.org;", RC_E_SIGNATURE},
        {"From: undisclosed-recipients:;", RC_E_SIGNATURE},
        {"From: Alice <alice@example.org>, Bosse <bosse@example.org>", RC_E_SIGNATURE},
        {"From: team: Alice <alice@example.org>, Bosse <bosse@example.org>;", RC_E_SIGNATURE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_t opened = {0}, out = {0};
        rc_error err;
        int rc = open_signed_from(cases[i].from, &opened, &err);
        if (rc != cases[i].want)
            fail_msg("'%s': rc_mail_open gave %d (%s), expected %d", cases[i].from, rc, err.msg,
                     cases[i].want);
        if (rc == 0) {
            assert_true(opened.len > 0);
            assert_memory_equal(opened.p, "Recrypt-Verdict: signed; member=alice@example.org",
                                strlen("Recrypt-Verdict: signed; member=alice@example.org"));
        } else {
            assert_int_equal(opened.len, 0);
            assert_non_null(strstr(err.msg, "not exactly one mailbox"));
            /* ... and the sealer will not make it. */
            char *msg = replaced_any(IN_MESSAGE, "From: Alice <alice@example.org>", cases[i].from);
            int fd = fd_with(msg);
            assert_int_equal(rc_mail_seal(fd, &F.st, &F.dev, &F.cert, IN_DATE + 5, buf_sink, &out,
                                          &err),
                             RC_E_POLICY);
            assert_int_equal(out.len, 0);
            close(fd);
            free(msg);
        }
        free(opened.p);
        free(out.p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udf),         cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keystrings),  cmocka_unit_test(test_statement),
        cmocka_unit_test(test_statement_v2_svcsig),
        cmocka_unit_test(test_cert),        cmocka_unit_test(test_entry),
        cmocka_unit_test(test_send),        cmocka_unit_test(test_send_signed),
        cmocka_unit_test(test_send_long),   cmocka_unit_test(test_recrypt_open),
        cmocka_unit_test(test_mime_sealed), cmocka_unit_test(test_mime_versions),
        cmocka_unit_test(test_mime_open),   cmocka_unit_test(test_mime_seal_shape),
        cmocka_unit_test(test_mime_seal_from_is_signer),
        cmocka_unit_test(test_grammar_date),      cmocka_unit_test(test_grammar_msgid),
        cmocka_unit_test(test_grammar_outer),     cmocka_unit_test(test_recrypted_line_endings),
        cmocka_unit_test(test_seal_outer_7bit),
        cmocka_unit_test(test_mime_inner_from_group),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
