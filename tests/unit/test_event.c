/* test_event.c - table-driven Check suite for tt_event: normalisation, rejections, hostile input. */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "suites.h"
#include "tt_event.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define FP_ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define FP_EMPTY "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Marker planted in hostile values; no error message may ever contain it. */
#define SECRET "s3cr3t"

/* ---- fixtures ---- */

#define HDR(type) "\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"src\",\"type\":\"" type "\",\"time\":0"
#define EV(type, data) "{" HDR(type) ",\"data\":{" data "}}"

/* Output header for HDR(type) */
#define OHDR(type)                                                                               \
    "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"src\",\"type\":\"" type                 \
    "\",\"time\":\"1970-01-01T00:00:00.000Z\",\"datacontenttype\":\"application/json\""
#define OEV(type, data) OHDR(type) ",\"data\":{" data "}}"

/* The smallest valid event of each type; mutation tests start from these. */
static const char *const base_event[TT_EV__COUNT] = {
    [TT_EV_TOKEN_ISSUED] = EV("token.issued", "\"token_id\":\"t1\",\"client_id\":\"c1\",\"scopes\":"
                                              "\"read\",\"issued_at\":0,\"expires_at\":1"),
    [TT_EV_TOKEN_USED] = EV("token.used", "\"token_id\":\"t1\",\"resource\":\"api\""),
    [TT_EV_TOKEN_REVOKED] = EV("token.revoked", "\"token_id\":\"t1\""),
    [TT_EV_INCIDENT_OPENED] = EV("incident.opened", "\"incident_id\":\"I1\",\"severity\":\"high\","
                                                    "\"services\":[\"api\"],\"opened_at\":0"),
    [TT_EV_INCIDENT_RESOLVED] = EV("incident.resolved", "\"incident_id\":\"I1\",\"resolved_at\":0"),
};

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    ck_assert_msg(j != NULL, "fixture does not parse: %s (%s)", text, jerr.text);
    return j;
}

/* ---- valid events and their exact canonical output ---- */

typedef struct {
    const char *in;
    const char *out;
    tt_event_type type;
    const char *token_id;    /* expected ev->token_id or NULL */
    const char *incident_id; /* expected ev->incident_id or NULL */
    int64_t time_ms;
} ok_case;

static const ok_case ok_cases[] = {
    /* every token.issued field, scrambled order, extensions, offset time */
    {"{\"data\":{\"incident_id\":\"INC-7\",\"expires_at\":\"2026-11-22T08:47:51Z\","
     "\"issued_at\":1795333671,\"grant_type\":\"client_credentials\","
     "\"audience\":\"https://api.example\",\"scopes\":\"repo:write  read repo:write\","
     "\"subject\":\"alice@example.com\",\"client_id\":\"ci-bot\",\"token_id\":\"tok-1\"},"
     "\"zeta\":true,\"alpha\":3,\"pi\":1.5,\"mid\":\"x\",\"subject\":\"alice\","
     "\"time\":\"2026-11-22T08:47:51.123+01:00\",\"type\":\"token.issued\","
     "\"source\":\"//idp.example/oauth\",\"id\":\"ev-1\",\"specversion\":\"1.0\","
     "\"datacontenttype\":\"application/json\"}",
     "{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"//idp.example/oauth\","
     "\"type\":\"token.issued\",\"time\":\"2026-11-22T07:47:51.123Z\",\"subject\":\"alice\","
     "\"datacontenttype\":\"application/json\",\"alpha\":3,\"mid\":\"x\",\"pi\":1.5,\"zeta\":true,"
     "\"data\":{\"token_id\":\"tok-1\",\"client_id\":\"ci-bot\",\"subject\":\"alice@example.com\","
     "\"scopes\":[\"read\",\"repo:write\"],\"audience\":[\"https://api.example\"],"
     "\"grant_type\":\"client_credentials\",\"token_type\":\"access\","
     "\"issued_at\":\"2026-11-22T07:47:51.000Z\",\"expires_at\":\"2026-11-22T08:47:51.000Z\","
     "\"incident_id\":\"INC-7\"}}",
     TT_EV_TOKEN_ISSUED, "tok-1", "INC-7", INT64_C(1795333671123)},
    /* minimal token.issued: token_type defaults to access, empty scope list is legal */
    {EV("token.issued", "\"token_id\":\"t1\",\"client_id\":\"c1\",\"scopes\":\"\",\"issued_at\":0,"
                        "\"expires_at\":0,\"token_type\":\"refresh\""),
     OEV("token.issued", "\"token_id\":\"t1\",\"client_id\":\"c1\",\"scopes\":[],"
                         "\"token_type\":\"refresh\",\"issued_at\":\"1970-01-01T00:00:00.000Z\","
                         "\"expires_at\":\"1970-01-01T00:00:00.000Z\""),
     TT_EV_TOKEN_ISSUED, "t1", NULL, 0},
    /* token.used with a raw token: fingerprinted, `token` dropped */
    {EV("token.used", "\"ip\":\"2001:db8::1\",\"status\":200,\"path\":\"/v1/repos\","
                      "\"method\":\"GET\",\"resource\":\"api.example\",\"scopes\":[\"read\"],"
                      "\"client_id\":\"ci-bot\",\"token\":\"abc\""),
     OEV("token.used", "\"token_id\":\"" FP_ABC "\",\"client_id\":\"ci-bot\",\"scopes\":[\"read\"],"
                       "\"resource\":\"api.example\",\"method\":\"GET\",\"path\":\"/v1/repos\","
                       "\"status\":200,\"ip\":\"2001:db8::1\""),
     TT_EV_TOKEN_USED, FP_ABC, NULL, 0},
    /* token and a matching token_id */
    {EV("token.used", "\"token_id\":\"" FP_ABC "\",\"token\":\"abc\",\"resource\":\"r\","
                      "\"ip\":\"192.0.2.7\""),
     OEV("token.used", "\"token_id\":\"" FP_ABC "\",\"resource\":\"r\",\"ip\":\"192.0.2.7\""),
     TT_EV_TOKEN_USED, FP_ABC, NULL, 0},
    /* token.revoked */
    {EV("token.revoked", "\"actor\":\"sec-bot\",\"reason\":\"leaked\",\"incident_id\":\"INC-7\","
                         "\"token_type\":\"refresh\",\"token_id\":\"" FP_EMPTY "\""),
     OEV("token.revoked", "\"token_id\":\"" FP_EMPTY "\",\"token_type\":\"refresh\","
                          "\"incident_id\":\"INC-7\",\"reason\":\"leaked\",\"actor\":\"sec-bot\""),
     TT_EV_TOKEN_REVOKED, FP_EMPTY, "INC-7", 0},
    /* incident.opened: services sorted and de-duplicated */
    {EV("incident.opened", "\"opened_at\":\"2026-11-22T07:00:00Z\",\"services\":[\"payments\","
                           "\"api\",\"payments\"],\"severity\":\"high\",\"title\":\"Leaked CI token\","
                           "\"incident_id\":\"INC-7\""),
     OEV("incident.opened", "\"incident_id\":\"INC-7\",\"title\":\"Leaked CI token\","
                            "\"severity\":\"high\",\"services\":[\"api\",\"payments\"],"
                            "\"opened_at\":\"2026-11-22T07:00:00.000Z\""),
     TT_EV_INCIDENT_OPENED, NULL, "INC-7", 0},
    /* incident.resolved, epoch ms time, dataschema kept */
    {"{\"specversion\":\"1.0\",\"id\":\"e2\",\"source\":\"s\",\"type\":\"incident.resolved\","
     "\"time\":\"1795333671123\",\"dataschema\":\"https://x/schema.json\","
     "\"data\":{\"resolved_at\":1795333671123,\"incident_id\":\"INC-7\",\"services\":[]}}",
     "{\"specversion\":\"1.0\",\"id\":\"e2\",\"source\":\"s\",\"type\":\"incident.resolved\","
     "\"time\":\"2026-11-22T07:47:51.123Z\",\"datacontenttype\":\"application/json\","
     "\"dataschema\":\"https://x/schema.json\",\"data\":{\"incident_id\":\"INC-7\",\"services\":[],"
     "\"resolved_at\":\"2026-11-22T07:47:51.123Z\"}}",
     TT_EV_INCIDENT_RESOLVED, NULL, "INC-7", INT64_C(1795333671123)},
};

/* Reads doc with reader 0 (tt_event_parse, in place) or 1 (jansson, then
 * tt_event_from_json): the redaction tests run every case through both. */
static int parse_with(int reader, const char *doc, tt_event *ev, tt_event_error *err)
{
    if (reader == 0) {
        return tt_event_parse(doc, strlen(doc), ev, err);
    }
    json_t *in = load(doc);
    int rc = tt_event_from_json(in, ev, err);
    json_decref(in);
    return rc;
}

/* data.path: credentials in the query, the fragment or a URL's user info
 * never reach the output; a bearer token becomes its fingerprint, so
 * access_token=abc shows the token_id of token "abc". */
typedef struct {
    const char *in;     /* the path as a JSON string body (escaped) */
    const char *out;    /* the stored path */
    const char *secret; /* must not appear in the output (NULL: none) */
} path_case;

static const path_case path_cases[] = {
    {"/v1/repos", "/v1/repos", NULL},
    {"/v1/x?limit=5&page=2", "/v1/x?limit=5&page=2", NULL},
    {"/v1/x?access_token=abc&limit=5", "/v1/x?access_token=" FP_ABC "&limit=5", "=abc"},
    {"/v1/x?ACCESS_TOKEN=abc", "/v1/x?ACCESS_TOKEN=" FP_ABC, "=abc"},
    /* the name and the value are form-decoded first: %61bc is abc */
    {"/v1/x?access%5Ftoken=%61bc", "/v1/x?access%5Ftoken=" FP_ABC, "%61bc"},
    {"/cb#access_token=abc&state=9", "/cb#access_token=" FP_ABC "&state=9", "=abc"},
    {"/x?a=1;client_secret=hunter2;b=2", "/x?a=1;client_secret=<redacted>;b=2", "hunter2"},
    {"/x?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz", "/x?code=<redacted>&state=xyz", "SplxlOB"},
    {"/o.bin?X-Amz-Credential=AKIA1%2F2&X-Amz-Signature=fe5f80&X-Amz-Expires=60",
     "/o.bin?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&X-Amz-Expires=60", "fe5f80"},
    {"/maps?key=AIzaSyD&q=x", "/maps?key=<redacted>&q=x", "AIzaSyD"},
    {"/x?password=pw1&user=bob", "/x?password=<redacted>&user=bob", "pw1"},
    {"/x?my_api_key=k9&session_id=s9", "/x?my_api_key=<redacted>&session_id=<redacted>", "k9"},
    /* empty values and bare names are left alone */
    {"/x?code=&key&token", "/x?code=&key&token", NULL},
    {"https://alice:pw9@api.example/v1", "https://alice:<redacted>@api.example/v1", "pw9"},
    {"https://host:8443/v1?b=c", "https://host:8443/v1?b=c", NULL},
    {"https://alice@host/v1", "https://alice@host/v1", NULL},
    {"/r?next=https://bob:pw8@evil/x&n=1", "/r?next=https://bob:<redacted>@evil/x&n=1", "pw8"},
    /* a nested reference: '?' separates parameters too */
    {"/login?next=/cb?access_token=abc", "/login?next=/cb?access_token=" FP_ABC, "=abc"},
    /* ... and a percent-encoded one is redacted whole */
    {"/cb?redirect_uri=https%3A%2F%2Fapp%2Fcb%3Faccess_token%3Dabc&s=1",
     "/cb?redirect_uri=<redacted>&s=1", "%3Dabc"},
    {"/cb?next=https%3A%2F%2Fbob%3Apw7%40evil%2Fx", "/cb?next=<redacted>", "pw7"},
    {"/cb?next=%2Fhome&q=a%20b", "/cb?next=%2Fhome&q=a%20b", NULL},
    /* '&' and ';' may be in a password; no scheme is needed */
    {"https://user:pa&PW9@host/x", "https://<redacted>/x", "PW9"},
    /* '&' before the '@': a parameter may hide there, the authority goes whole */
    {"/oauth/login?return_to=https://app.example.com&username=alice&password=Tr0ub4dor@HUNTERPW",
     "/oauth/login?return_to=https://<redacted>", "HUNTERPW"},
    /* a token as the user name, with a password after it */
    {"/clone?u=https://ghp_16C7e42F292c6912E7710c838347Ae178B4a:x-oauth-basic@github.com/r.git",
     "/clone?u=https://<redacted>@github.com/r.git", "ghp_16C7"},
    /* a form-encoded value or name that is itself a query */
    {"/x?state=access_token%3DSECRETV&y=1", "/x?state=<redacted>&y=1", "SECRETV"},
    {"/x?access_token%3DSECRETQ&y=1", "/x?<redacted>&y=1", "SECRETQ"},
    /* a name that decodes to a credential, with a value after it */
    {"/cb?access_token%3DSECRETSECRET=x&y=1", "/cb?<redacted>&y=1", "SECRETSECRET"},
    {"/cb?Bearer%20AbCdEfGhIjKlMnOpQrSt=1", "/cb?<redacted>", "AbCdEfGh"},
    {"/x?a=1&https%3A%2F%2Fu%3ALEAKpw%40host=1", "/x?a=1&<redacted>", "LEAKpw"},
    {"/x?passphrase=LEAKpp&user_pwd=LEAKpw2", "/x?passphrase=<redacted>&user_pwd=<redacted>",
     "LEAKp"},
    /* matrix parameters in the path */
    {"/app;jsessionid=SECRETJ?x=1", "/app;jsessionid=<redacted>?x=1", "SECRETJ"},
    {"//user:pw6@host/x", "//user:<redacted>@host/x", "pw6"},
    /* a token as the user name */
    {"https://ghp_ABCDEF1234567890xyz@github.com/x", "https://<redacted>@github.com/x", "ghp_"},
    {"ssh://git@github.com/r.git", "ssh://git@github.com/r.git", NULL},
    {"/x?pass=hunter3&pw=h4", "/x?pass=<redacted>&pw=<redacted>", "hunter3"},
    /* encoded once per redirect hop: decoded up to 4 times */
    {"/login?return_to=%2Flogin%3Fnext%3D%252Fcb%253Fcode%253DDBL77", "/login?return_to=<redacted>",
     "DBL77"},
    /* form-encoded text with a credential in it */
    {"/x?h=Bearer+Zq8Xv3Lm0Pw7Rt5Ny2Kb", "/x?h=<redacted>", "Zq8Xv3"},
    {"/x?h=Bearer%20Zq8Xv3Lm0Pw7Rt5Ny2Kb&q=1", "/x?h=<redacted>&q=1", "Zq8Xv3"},
    /* user info first: a password may hold "&key=" */
    {"/x?u=https://bob:PWPRE&key=9x@host/", "/x?u=https://<redacted>/", "PWPRE"},
    {"/x#//u:pw5@h", "/x#//u:<redacted>@h", "pw5"},
    /* auth and pass as parts of a name */
    {"/x?auth_code=SPLX1&db.pass=Q2&sort_key=name", "/x?auth_code=<redacted>&db.pass=<redacted>&sort_key=name",
     "SPLX1"},
    /* ordinary names are kept: author, passengers, bypass_cache */
    {"/books?author=bob&passengers=3&bypass_cache=1&compass=n",
     "/books?author=bob&passengers=3&bypass_cache=1&compass=n", NULL},
    /* JSON escapes in the input are decoded before the redaction */
    {"\\/x?access_token=\\u0061bc", "/x?access_token=" FP_ABC, "=abc"},
};

START_TEST(test_path_redaction)
{
    const path_case *c = &path_cases[_i];
    char buf[1024];
    snprintf(buf, sizeof(buf),
             EV("token.used", "\"token_id\":\"t1\",\"resource\":\"r\",\"path\":\"%s\""), c->in);
    /* both readers: the in-place one and the jansson one */
    for (int reader = 0; reader < 2; reader++) {
        tt_event ev;
        tt_event_error err;
        int rc = parse_with(reader, buf, &ev, &err);
        ck_assert_msg(rc == 0, "%s rejected: %s", c->in, err.msg);
        json_t *data = json_object_get(ev.json, "data");
        const char *got = json_string_value(json_object_get(data, "path"));
        ck_assert_ptr_nonnull(got);
        ck_assert_msg(strcmp(got, c->out) == 0, "reader %d: '%s' became '%s', want '%s'", reader,
                      c->in, got, c->out);
        char *dump = tt_event_dump(&ev);
        ck_assert_ptr_nonnull(dump);
        if (c->secret != NULL) {
            ck_assert_msg(strstr(dump, c->secret) == NULL, "'%s' leaked in %s", c->secret, dump);
        }
        free(dump);
        tt_event_clear(&ev);
    }
}
END_TEST

/* Free text (data strings, the subject, extension attributes, data.path):
 * a raw JWT or a "Bearer" credential becomes its fingerprint, a "Basic"
 * credential <redacted>; prose is left alone. */
#define JWT "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
#define FP_JWT "sha256:9f0240aeb574982ba29029034c3a0baa64efb7f8764c515413a71b471dba5ac6"
#define OPAQUE "Zq8Xv3Lm0Pw7Rt5Ny2Kb"
#define FP_OPAQUE "sha256:f946b8bd683010434355fa2d3a7e64129ba60ebc947f7671f4070fbecbf049ea"

typedef struct {
    const char *type;   /* event type */
    const char *data;   /* data members besides token_id (escaped JSON) */
    const char *ext;    /* top-level members besides the required ones, or "" */
    const char *ptr;    /* JSON pointer-ish: "data.<key>" or "<attr>" */
    const char *out;    /* the stored value */
    const char *secret; /* must not appear in the output (NULL: none) */
} text_case;

static const text_case text_cases[] = {
    {"token.revoked", "\"reason\":\"leaked: " JWT " in a ticket\"", "", "data.reason",
     "leaked: " FP_JWT " in a ticket", "c2ln"},
    {"token.revoked", "\"reason\":\"curl -H 'Authorization: Bearer " OPAQUE "'\"", "", "data.reason",
     "curl -H 'Authorization: Bearer " FP_OPAQUE "'", OPAQUE},
    {"token.revoked", "\"actor\":\"BEARER   " OPAQUE "\"", "", "data.actor",
     "BEARER   " FP_OPAQUE, OPAQUE},
    /* base64("user:pass") */
    {"token.revoked", "\"reason\":\"Basic dXNlcjpwYXNz sent\"", "", "data.reason",
     "Basic <redacted> sent", "dXNlcjpwYXNz"},
    {"token.used", "\"resource\":\"r\",\"path\":\"/t/" JWT "/x\"", "", "data.path",
     "/t/" FP_JWT "/x", "c2ln"},
    {"token.used", "\"resource\":\"r\"", ",\"subject\":\"" JWT "\"", "subject", FP_JWT, "c2ln"},
    {"token.used", "\"resource\":\"r\"", ",\"note\":\"bearer " OPAQUE "\"", "note",
     "bearer " FP_OPAQUE, OPAQUE},
    {"token.used", "\"resource\":\"r\"", ",\"dataschema\":\"https://u:pw4@h/s.json?token=" OPAQUE "\"",
     "dataschema", "https://u:<redacted>@h/s.json?token=" FP_OPAQUE, OPAQUE},
    {"token.revoked", "\"reason\":\"Bearer\\t" OPAQUE "\"", "", "data.reason",
     "Bearer\t" FP_OPAQUE, OPAQUE},
    /* base64("user:pw") unpadded */
    {"token.revoked", "\"reason\":\"basic dXNlcjpwdw\"", "", "data.reason", "basic <redacted>",
     "dXNlcjpwdw"},
    /* a sentence's full stop is not part of the credential */
    {"token.revoked", "\"reason\":\"client sent Basic QUxJQ0U6U3VwZXJTZWNyZXQx.\"", "",
     "data.reason", "client sent Basic <redacted>.", "QUxJQ0U6"},
    {"token.revoked", "\"reason\":\"pasted Bearer " OPAQUE ".\"", "", "data.reason",
     "pasted Bearer " FP_OPAQUE ".", OPAQUE},
    {"token.revoked", "\"reason\":\"pasted Bearer " JWT ".\"", "", "data.reason",
     "pasted Bearer " FP_JWT ".", "c2ln"},
    /* a Bearer credential is all of its token68, not just a JWT at its start */
    {"token.revoked",
     "\"reason\":\"client sent Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc+SIGNATURETAIL/xyz=\"",
     "", "data.reason",
     "client sent Bearer sha256:29990059118c47500802a92bc3f73d8782dfbe098da258f495207f1284b2672b",
     "SIGNATURETAIL"},
    {"token.revoked", "\"reason\":\"Bearer\\n" OPAQUE "\"", "", "data.reason", "Bearer\n" FP_OPAQUE,
     OPAQUE},
    /* free text gets the URI rules too */
    {"token.revoked", "\"reason\":\"see https://bob:pw3@h/x\"", "", "data.reason",
     "see https://bob:<redacted>@h/x", "pw3"},
    /* a JWT then an ellipsis: the JWT's own fingerprint */
    {"token.revoked", "\"reason\":\"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl...\"", "",
     "data.reason",
     "jwt sha256:0584d4019ab0da6fee4be4c07edf26e140f978aa7970a3dc23e2c89bf5cb57e6...", "c2lnbmF0"},
    /* resource is a URI-reference too */
    {"token.used", "\"resource\":\"https://bob:hunter5@api/\"", "", "data.resource",
     "https://bob:<redacted>@api/", "hunter5"},
    /* an empty user (an API key as the password), and a UTF-8 password */
    {"token.revoked", "\"reason\":\"Basic OnNrX2xpdmVfQUJDREVGR0hJSktMTU5PUA==\"", "", "data.reason",
     "Basic <redacted>", "OnNrX2xp"},
    {"token.revoked", "\"reason\":\"Basic dXNlcjpww6RzczEyMzQ=\"", "", "data.reason",
     "Basic <redacted>", "dXNlcjpww6R"},
    /* words that decode to a ':' by chance are not Basic credentials */
    {"token.revoked", "\"reason\":\"Basic Only and Basic Operations\"", "", "data.reason",
     "Basic Only and Basic Operations", NULL},
    /* prose and near misses stay as they are */
    {"token.revoked", "\"reason\":\"bearer authentication failed\"", "", "data.reason",
     "bearer authentication failed", NULL},
    {"token.revoked", "\"reason\":\"Basic auth disabled\"", "", "data.reason",
     "Basic auth disabled", NULL},
    {"token.revoked", "\"reason\":\"Bearer abc123\"", "", "data.reason", "Bearer abc123", NULL},
    {"token.revoked", "\"reason\":\"see eyJ.a.b and eyJhbGci.x.y\"", "", "data.reason",
     "see eyJ.a.b and eyJhbGci.x.y", NULL},
    /* glued to a word, still a token */
    {"token.revoked", "\"reason\":\"xBearer " OPAQUE " id=" JWT "\"", "", "data.reason",
     "xBearer " FP_OPAQUE " id=" FP_JWT, OPAQUE},
};

/* Identifiers (id, source, token_id, list entries) are stored as sent, since
 * they name things and decide duplicates: one that carries a credential is
 * refused. A cleaned string that outgrows its limit is refused too. */
typedef struct {
    const char *doc;
    const char *msg; /* the start of the rejection message */
} refuse_case;

#define DOC(attrs, data)                                                                           \
    "{\"specversion\":\"1.0\",\"type\":\"token.used\",\"time\":0," attrs ",\"data\":{" data "}}"
#define JWT18                                                                                      \
    "eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA."           \
    "eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA."           \
    "eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA.eyJAAAAAAA.AA."

static const refuse_case refuse_cases[] = {
    {DOC("\"id\":\"ev-" JWT "\",\"source\":\"s\"", "\"token_id\":\"t\",\"resource\":\"r\""),
     "id: holds a credential"},
    {DOC("\"id\":\"Basic dXNlcjpwYXNz\",\"source\":\"s\"", "\"token_id\":\"t\",\"resource\":\"r\""),
     "id: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"//rs/orders?access_token=" OPAQUE "\"",
         "\"token_id\":\"t\",\"resource\":\"r\""),
     "source: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"//svc:pw1@idp.example/oauth\"", "\"token_id\":\"t\",\"resource\":\"r\""),
     "source: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"", "\"token_id\":\"jwt:" JWT "\",\"resource\":\"r\""),
     "data.token_id: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"", "\"token_id\":\"Bearer " OPAQUE "\",\"resource\":\"r\""),
     "data.token_id: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"",
         "\"token_id\":\"t\",\"resource\":\"r\",\"audience\":[\"a\",\"Bearer " OPAQUE "\"]"),
     "data.audience[1]: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"", "\"token_id\":\"t\",\"resource\":\"r\",\"scopes\":\"read " JWT "\""),
     "data.scopes: holds a credential"},
    {DOC("\"id\":\"Basic QUxJQ0U6U3VwZXJTZWNyZXQx.\",\"source\":\"s\"",
         "\"token_id\":\"t\",\"resource\":\"r\""),
     "id: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"//idp?r=%2Fa%3Fn%3D%252Fcb%253Faccess_token%253DX\"",
         "\"token_id\":\"t\",\"resource\":\"r\""),
     "source: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"",
         "\"token_id\":\"t\",\"resource\":\"r\",\"audience\":[\"https://api/?access_token=abc\"]"),
     "data.audience[0]: holds a credential"},
    {DOC("\"id\":\"ev?access_token=abc\",\"source\":\"s\"", "\"token_id\":\"t\",\"resource\":\"r\""),
     "id: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"", "\"token_id\":\"https://u:pw@h\",\"resource\":\"r\""),
     "data.token_id: holds a credential"},
    /* the string form of scopes is checked before it is split */
    {DOC("\"id\":\"e\",\"source\":\"s\"",
         "\"token_id\":\"t\",\"resource\":\"r\",\"scopes\":\"repo Bearer " OPAQUE "\""),
     "data.scopes: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"",
         "\"token_id\":\"t\",\"resource\":\"r\",\"services\":[\"https://u:pw@h\"]"),
     "data.services"},
    {DOC("\"id\":\"e?Bearer%20AbCdEfGhIjKlMnOpQrSt=1\",\"source\":\"s\"",
         "\"token_id\":\"t\",\"resource\":\"r\""),
     "id: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"",
         "\"token_id\":\"t\",\"resource\":\"r\",\"scopes\":\"openid ?access_token= LEAKFIVEabcdefgh\""),
     "data.scopes: holds a credential"},
    /* the raw data.token repeated in another member */
    {DOC("\"id\":\"e\",\"source\":\"s\"",
         "\"token\":\"gho_LEAKopaque0123456789\",\"resource\":\"r\","
         "\"path\":\"/x/gho_LEAKopaque0123456789\""),
     "data.path: holds the raw token of data.token"},
    {DOC("\"id\":\"e\",\"source\":\"s\",\"subject\":\"x gho_LEAKopaque0123456789\"",
         "\"token\":\"gho_LEAKopaque0123456789\",\"resource\":\"r\""),
     "subject: holds the raw token of data.token"},
    {DOC("\"id\":\"gho_LEAKopaque0123456789\",\"source\":\"s\"",
         "\"token\":\"gho_LEAKopaque0123456789\",\"resource\":\"r\""),
     "id: holds the raw token of data.token"},
    {"{\"specversion\":\"0.3\",\"type\":\"token.used\",\"time\":0,\"id\":\"Bearer " JWT "\","
     "\"source\":\"s\",\"data\":{\"token_id\":\"t\",\"resource\":\"r\"}}",
     "specversion: must be"},
    {DOC("\"id\":\"e\",\"source\":\"https://gitlab.example/api?private_token=glpat-ABCDEFGHIJ1234567890\"",
         "\"token_id\":\"t\",\"resource\":\"r\""),
     "source: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"https://ghp_ABCDEFGHIJKLMNOP1234@github.com/o/r\"",
         "\"token_id\":\"t\",\"resource\":\"r\""),
     "source: holds a credential"},
    {DOC("\"id\":\"e\",\"source\":\"s\"", "\"token_id\":\"abc?auth_token=SECRET\",\"resource\":\"r\""),
     "data.token_id: holds a credential"},
    /* the raw token as the id of an event rejected for another reason */
    {"{\"specversion\":\"1.0\",\"type\":\"token.used\",\"time\":\"x\",\"id\":\"gho_LEAKopaque0123456789\","
     "\"source\":\"s\",\"data\":{\"token\":\"gho_LEAKopaque0123456789\",\"resource\":\"r\"}}",
     "time: not a timestamp"},
    /* 252 bytes of minimal JWTs clean to 675: over client_id's 256 */
    {DOC("\"id\":\"e\",\"source\":\"s\"", "\"token_id\":\"t\",\"resource\":\"r\",\"client_id\":\"" JWT18 "\""),
     "data.client_id: longer than 256 bytes once the credentials in it are replaced"},
};

START_TEST(test_credentials_refused)
{
    const refuse_case *c = &refuse_cases[_i];
    for (int reader = 0; reader < 2; reader++) {
        tt_event ev;
        tt_event_error err;
        int rc = parse_with(reader, c->doc, &ev, &err);
        ck_assert_msg(rc == -1, "reader %d accepted %s", reader, c->doc);
        ck_assert_msg(strncmp(err.msg, c->msg, strlen(c->msg)) == 0, "reader %d: '%s', want '%s...'",
                      reader, err.msg, c->msg);
        ck_assert_msg(strstr(err.msg, OPAQUE) == NULL && strstr(err.msg, "c2ln") == NULL &&
                          strstr(err.msg, "LEAK") == NULL,
                      "the message quotes the credential: %s", err.msg);
        /* nor does the id the answer names the rejected event by */
        ck_assert_msg(strstr(err.id, "c2ln") == NULL && strstr(err.id, "QUxJ") == NULL &&
                          strstr(err.id, "AbCdEfGh") == NULL && strstr(err.id, "access_token") == NULL &&
                          strstr(err.id, "LEAK") == NULL,
                      "the id echoes the credential: %s", err.id);
    }
}
END_TEST

/* Identifiers are refused only for credentials beyond doubt: ordinary
 * sources with a matrix parameter or a long user name are kept as sent. And
 * a long run of "eyJ" in the scopes string is rejected for its length, after
 * a scan that is linear in it. */
START_TEST(test_identifiers_kept)
{
    static const char *const docs[] = {
        DOC("\"id\":\"e\",\"source\":\"https://rs.example/api;auth=v2\"",
            "\"token_id\":\"t\",\"resource\":\"r\""),
        DOC("\"id\":\"e\",\"source\":\"https://svc-account-prod@idp.example/oauth\"",
            "\"token_id\":\"t\",\"resource\":\"r\""),
        DOC("\"id\":\"e?ticket=INC-2041\",\"source\":\"//idp.example/oauth?session=7\"",
            "\"token_id\":\"t\",\"resource\":\"r\",\"audience\":[\"https://api.example.com:8443/v1\"]"),
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        tt_event ev;
        tt_event_error err;
        ck_assert_msg(tt_event_parse(docs[i], strlen(docs[i]), &ev, &err) == 0, "%s: %s", docs[i],
                      err.msg);
        char *dump = tt_event_dump(&ev);
        ck_assert_ptr_nonnull(dump);
        ck_assert_msg(strstr(dump, "redacted") == NULL && strstr(dump, "sha256:") == NULL,
                      "altered: %s", dump);
        free(dump);
        tt_event_clear(&ev);
    }
    /* 60,000 bytes of "eyJ": under the string limit, over an entry's */
    size_t reps = 20000;
    const char *pre = "{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":"
                      "\"token.issued\",\"time\":0,\"data\":{\"token_id\":\"t\",\"client_id\":\"c\","
                      "\"issued_at\":0,\"expires_at\":1,\"scopes\":\"";
    const char *post = "\"}}";
    size_t pl = strlen(pre), ql = strlen(post);
    char *buf = malloc(pl + 3 * reps + ql + 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, pre, pl);
    for (size_t i = 0; i < reps; i++) {
        memcpy(buf + pl + 3 * i, "eyJ", 3);
    }
    memcpy(buf + pl + 3 * reps, post, ql + 1);
    tt_event ev;
    tt_event_error err;
    ck_assert_int_eq(tt_event_parse(buf, strlen(buf), &ev, &err), -1);
    ck_assert_msg(strncmp(err.msg, "data.scopes[0]: longer than", 27) == 0, "%s", err.msg);
    free(buf);
}
END_TEST

START_TEST(test_text_redaction)
{
    const text_case *c = &text_cases[_i];
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"src\",\"type\":\"%s\","
             "\"time\":0%s,\"data\":{\"token_id\":\"t1\",%s}}",
             c->type, c->ext, c->data);
    for (int reader = 0; reader < 2; reader++) {
        tt_event ev;
        tt_event_error err;
        int rc = parse_with(reader, buf, &ev, &err);
        ck_assert_msg(rc == 0, "%s rejected: %s", buf, err.msg);
        json_t *obj = ev.json;
        const char *key = c->ptr;
        if (strncmp(key, "data.", 5) == 0) {
            obj = json_object_get(obj, "data");
            key += 5;
        }
        const char *got = json_string_value(json_object_get(obj, key));
        ck_assert_ptr_nonnull(got);
        ck_assert_msg(strcmp(got, c->out) == 0, "reader %d: %s is '%s', want '%s'", reader, c->ptr,
                      got, c->out);
        char *dump = tt_event_dump(&ev);
        ck_assert_ptr_nonnull(dump);
        if (c->secret != NULL) {
            ck_assert_msg(strstr(dump, c->secret) == NULL, "'%s' leaked in %s", c->secret, dump);
        }
        free(dump);
        tt_event_clear(&ev);
    }
}
END_TEST

/* Random mixes of the pieces the redaction looks for, in data.path and in a
 * free-text field, through both readers (under ASan in make test): every one
 * is accepted, both readers store the same, and neither the JWT nor a token
 * placed right after "Bearer " survives anywhere. */
START_TEST(test_redaction_random)
{
    static const char *const pieces[] = {
        "/", "?", "#", "&", ";", "=", "://", "@", ":", " ", "+", "%2F", "%", "x", "y1",
        "access_token=", "client_secret", "code", "token", "Bearer ", "basic ", "eyJ", ".",
        JWT, "Bearer " OPAQUE, "access_token=" OPAQUE, "https://u:" OPAQUE "@h"};
    unsigned seed = 12345;
    char text[512];
    char buf[1400];
    for (int round = 0; round < 3000; round++) {
        size_t n = 0;
        int k = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 24;
        for (int p = 0; p < k; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *piece = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(piece);
            if (n + pl >= sizeof(text)) {
                break;
            }
            memcpy(text + n, piece, pl);
            n += pl;
        }
        text[n] = '\0';
        snprintf(buf, sizeof(buf),
                 EV("token.used", "\"token_id\":\"t1\",\"resource\":\"%s\",\"path\":\"%s\""), text,
                 text);
        tt_event ev1;
        tt_event ev2;
        tt_event_error err;
        tt_event_error err2;
        int rc1 = tt_event_parse(buf, strlen(buf), &ev1, &err);
        json_t *in = load(buf);
        int rc2 = tt_event_from_json(in, &ev2, &err2);
        json_decref(in);
        ck_assert_msg(rc1 == rc2, "%s: readers differ: %d / %d", text, rc1, rc2);
        if (rc1 != 0) {
            /* only a string the replacements made too long may be refused */
            ck_assert_msg(err.reason == TT_REJ_TOO_LONG && strstr(err.msg, "once the credentials"),
                          "%s: %s", text, err.msg);
            ck_assert_str_eq(err.msg, err2.msg);
            continue;
        }
        char *d1 = tt_event_dump(&ev1);
        char *d2 = tt_event_dump(&ev2);
        ck_assert_ptr_nonnull(d1);
        ck_assert_ptr_nonnull(d2);
        ck_assert_str_eq(d1, d2);
        ck_assert_msg(strstr(d1, "Bearer " OPAQUE) == NULL, "leak in %s", d1);
        ck_assert_msg(strstr(d1, JWT) == NULL, "leak in %s", d1);
        free(d1);
        free(d2);
        tt_event_clear(&ev1);
        tt_event_clear(&ev2);
    }
}
END_TEST

static void check_ok(const ok_case *c, tt_event *ev)
{
    char *dump = tt_event_dump(ev);
    ck_assert_ptr_nonnull(dump);
    ck_assert_str_eq(dump, c->out);
    free(dump);
    ck_assert_int_eq(ev->type, c->type);
    ck_assert_ptr_nonnull(ev->json);
    ck_assert_str_eq(ev->id, json_string_value(json_object_get(ev->json, "id")));
    ck_assert_str_eq(ev->source, json_string_value(json_object_get(ev->json, "source")));
    ck_assert_int_eq(ev->time_ms, c->time_ms);
    if (c->token_id == NULL) {
        ck_assert_ptr_null(ev->token_id);
    } else {
        ck_assert_str_eq(ev->token_id, c->token_id);
    }
    if (c->incident_id == NULL) {
        ck_assert_ptr_null(ev->incident_id);
    } else {
        ck_assert_str_eq(ev->incident_id, c->incident_id);
    }
}

START_TEST(test_valid_from_json)
{
    const ok_case *c = &ok_cases[_i];
    json_t *in = load(c->in);
    tt_event ev;
    tt_event_error err;
    int rc = tt_event_from_json(in, &ev, &err);
    json_decref(in);
    ck_assert_msg(rc == 0, "rejected: %s", err.msg);
    check_ok(c, &ev);
    tt_event_clear(&ev);
    ck_assert_ptr_null(ev.json);
}
END_TEST

START_TEST(test_valid_parse)
{
    const ok_case *c = &ok_cases[_i];
    tt_event ev;
    tt_event_error err;
    int rc = tt_event_parse(c->in, strlen(c->in), &ev, &err);
    ck_assert_msg(rc == 0, "rejected: %s", err.msg);
    check_ok(c, &ev);
    tt_event_clear(&ev);
}
END_TEST

/* The output is itself a valid event and normalising it changes nothing. */
START_TEST(test_valid_idempotent)
{
    const ok_case *c = &ok_cases[_i];
    tt_event ev;
    tt_event ev2;
    tt_event_error err;
    ck_assert_int_eq(tt_event_parse(c->in, strlen(c->in), &ev, &err), 0);
    char *dump = tt_event_dump(&ev);
    ck_assert_int_eq(tt_event_parse(dump, strlen(dump), &ev2, &err), 0);
    char *dump2 = tt_event_dump(&ev2);
    ck_assert_str_eq(dump2, dump);
    free(dump);
    free(dump2);
    tt_event_clear(&ev);
    tt_event_clear(&ev2);
}
END_TEST

/* ---- list normalisation ---- */

typedef struct {
    const char *field;
    const char *value; /* JSON */
    const char *out;   /* JSON of the normalised array */
} list_case;

static const list_case list_cases[] = {
    {"scopes", "\"b a  a c\"", "[\"a\",\"b\",\"c\"]"},
    {"scopes", "\"  read   write  \"", "[\"read\",\"write\"]"},
    {"scopes", "\"\"", "[]"},
    {"scopes", "\"   \"", "[]"},
    {"scopes", "[]", "[]"},
    {"scopes", "[\"b\",\"a\",\"b\"]", "[\"a\",\"b\"]"},
    {"scopes", "\"abc ab a\"", "[\"a\",\"ab\",\"abc\"]"},
    {"scopes", "\"b B a A\"", "[\"A\",\"B\",\"a\",\"b\"]"},
    {"scopes", "\"!#[]~ repo:status user:email\"", "[\"!#[]~\",\"repo:status\",\"user:email\"]"},
    {"scopes", "\"https://graph.example/.default\"", "[\"https://graph.example/.default\"]"},
    {"audience", "\"https://api.example\"", "[\"https://api.example\"]"},
    {"audience", "\"a b\"", "[\"a b\"]"},
    {"audience", "[\"z\",\"y\",\"z\",\"x\"]", "[\"x\",\"y\",\"z\"]"},
    {"audience", "[]", "[]"},
};

START_TEST(test_list_normalisation)
{
    const list_case *c = &list_cases[_i];
    json_t *in = load(base_event[TT_EV_TOKEN_ISSUED]);
    json_t *value = load(c->value);
    json_object_set_new(json_object_get(in, "data"), c->field, value);
    tt_event ev;
    tt_event_error err;
    int rc = tt_event_from_json(in, &ev, &err);
    json_decref(in);
    ck_assert_msg(rc == 0, "%s=%s rejected: %s", c->field, c->value, err.msg);
    char *got = json_dumps(json_object_get(json_object_get(ev.json, "data"), c->field),
                           JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_str_eq(got, c->out);
    free(got);
    tt_event_clear(&ev);
}
END_TEST

/* ---- the raw token is fingerprinted and wiped from the input ---- */

typedef struct {
    const char *in;
    int rc;
} wipe_case;

static const wipe_case wipe_cases[] = {
    {EV("token.used", "\"token\":\"abc\",\"resource\":\"r\""), 0},
    /* rejected events must not keep the secret either */
    {EV("token.used", "\"token\":\"abc\",\"resource\":\"r\",\"access_token\":\"x\""), -1},
    {EV("token.used", "\"token\":\"abc\",\"token_id\":\"t1\",\"resource\":\"r\""), -1},
    {EV("token.used", "\"token\":\"abc\""), -1},
    {"{\"specversion\":\"0.3\",\"data\":{\"token\":\"abc\"}}", -1},
};

START_TEST(test_token_wiped)
{
    const wipe_case *c = &wipe_cases[_i];
    json_t *in = load(c->in);
    const json_t *tok = json_object_get(json_object_get(in, "data"), "token");
    ck_assert_str_eq(json_string_value(tok), "abc");
    tt_event ev;
    tt_event_error err;
    ck_assert_int_eq(tt_event_from_json(in, &ev, &err), c->rc);
    /* same object, same length, every byte zero */
    ck_assert_ptr_eq(json_object_get(json_object_get(in, "data"), "token"), tok);
    ck_assert_uint_eq(json_string_length(tok), 3);
    const char *bytes = json_string_value(tok);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(bytes[i], 0);
    }
    if (c->rc == 0) {
        ck_assert_str_eq(ev.token_id, FP_ABC);
        char *dump = tt_event_dump(&ev);
        ck_assert_ptr_null(strstr(dump, "\"token\""));
        ck_assert_ptr_null(strstr(dump, "abc"));
        free(dump);
    }
    tt_event_clear(&ev);
    json_decref(in);
}
END_TEST

typedef struct {
    const char *in;
    size_t len;
    const char *fp;
} fp_case;

static const fp_case fp_cases[] = {
    {"abc", 3, FP_ABC},
    {"", 0, FP_EMPTY},
    {"abcdef", 3, FP_ABC},
};

START_TEST(test_fingerprint)
{
    const fp_case *c = &fp_cases[_i];
    char out[TT_FINGERPRINT_BUFSZ];
    tt_fingerprint(c->in, c->len, out);
    ck_assert_str_eq(out, c->fp);
    ck_assert_int_eq(tt_is_fingerprint(out), 1);
}
END_TEST

typedef struct {
    const char *s;
    int want;
} isfp_case;

static const isfp_case isfp_cases[] = {
    {FP_ABC, 1},
    {FP_EMPTY, 1},
    {"sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", 0},
    {"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", 0},
    {FP_ABC "0", 0},
    {"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag", 0},
    {"sha1:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 0},
    {"sha256:", 0},
    {"", 0},
    {NULL, 0},
};

START_TEST(test_is_fingerprint)
{
    ck_assert_int_eq(tt_is_fingerprint(isfp_cases[_i].s), isfp_cases[_i].want);
}
END_TEST

/* ---- mutations of the base events: every field, wrong type / missing / bad ---- */

enum where { TOP, DATA };

typedef struct {
    tt_event_type base;
    enum where where;
    const char *key;
    const char *value; /* JSON text; NULL deletes the key */
    int reason;        /* expected TT_REJ_*, or -1 for "accepted" */
    const char *msg;
} mut_case;

#define OK (-1)

static const mut_case mut_cases[] = {
    /* specversion */
    {TT_EV_TOKEN_USED, TOP, "specversion", NULL, TT_REJ_MISSING, "specversion: missing"},
    {TT_EV_TOKEN_USED, TOP, "specversion", "1.0", TT_REJ_WRONG_TYPE, "specversion: not a string"},
    {TT_EV_TOKEN_USED, TOP, "specversion", "\"0.3\"", TT_REJ_BAD_VALUE, "specversion: must be \"1.0\""},
    {TT_EV_TOKEN_USED, TOP, "specversion", "\"1.0 \"", TT_REJ_BAD_VALUE, "specversion: must be \"1.0\""},
    /* id */
    {TT_EV_TOKEN_USED, TOP, "id", NULL, TT_REJ_MISSING, "id: missing"},
    {TT_EV_TOKEN_USED, TOP, "id", "7", TT_REJ_WRONG_TYPE, "id: not a string"},
    {TT_EV_TOKEN_USED, TOP, "id", "\"\"", TT_REJ_BAD_VALUE, "id: empty"},
    {TT_EV_TOKEN_USED, TOP, "id", "null", TT_REJ_WRONG_TYPE, "id: not a string"},
    /* source */
    {TT_EV_TOKEN_USED, TOP, "source", NULL, TT_REJ_MISSING, "source: missing"},
    {TT_EV_TOKEN_USED, TOP, "source", "[]", TT_REJ_WRONG_TYPE, "source: not a string"},
    {TT_EV_TOKEN_USED, TOP, "source", "\"\"", TT_REJ_BAD_VALUE, "source: empty"},
    /* type */
    {TT_EV_TOKEN_USED, TOP, "type", NULL, TT_REJ_MISSING, "type: missing"},
    {TT_EV_TOKEN_USED, TOP, "type", "3", TT_REJ_WRONG_TYPE, "type: not a string"},
    {TT_EV_TOKEN_USED, TOP, "type", "\"token.foo\"", TT_REJ_UNKNOWN_TYPE,
     "type: unknown event type \"token.foo\""},
    {TT_EV_TOKEN_USED, TOP, "type", "\"\"", TT_REJ_UNKNOWN_TYPE, "type: unknown event type \"\""},
    {TT_EV_TOKEN_USED, TOP, "type", "\"Token.Used\"", TT_REJ_UNKNOWN_TYPE,
     "type: unknown event type \"Token.Used\""},
    {TT_EV_TOKEN_USED, TOP, "type", "\"tok\\u00e9n\\n\\\"x\\\\\"", TT_REJ_UNKNOWN_TYPE,
     "type: unknown event type \"tok??n??x?\""},
    {TT_EV_TOKEN_USED, TOP, "type",
     "\"0123456789012345678901234567890123456789012345678901234567890123456789\"",
     TT_REJ_UNKNOWN_TYPE,
     "type: unknown event type \"0123456789012345678901234567890123456789012345678901234567890123\""},
    /* time */
    {TT_EV_TOKEN_USED, TOP, "time", NULL, TT_REJ_MISSING, "time: missing"},
    {TT_EV_TOKEN_USED, TOP, "time", "true", TT_REJ_TIMESTAMP, "time: not a timestamp"},
    {TT_EV_TOKEN_USED, TOP, "time", "\"yesterday\"", TT_REJ_TIMESTAMP, "time: not a timestamp"},
    {TT_EV_TOKEN_USED, TOP, "time", "\"2025-02-29T00:00:00Z\"", TT_REJ_TIMESTAMP,
     "time: not a timestamp"},
    {TT_EV_TOKEN_USED, TOP, "time", "-1", TT_REJ_TIMESTAMP, "time: timestamp out of range"},
    {TT_EV_TOKEN_USED, TOP, "time", "-1700000000", TT_REJ_TIMESTAMP, "time: timestamp out of range"},
    {TT_EV_TOKEN_USED, TOP, "time", "1e300", TT_REJ_TIMESTAMP, "time: timestamp out of range"},
    {TT_EV_TOKEN_USED, TOP, "time", "9223372036854775807", TT_REJ_TIMESTAMP,
     "time: timestamp out of range"},
    /* optional top-level attributes */
    {TT_EV_TOKEN_USED, TOP, "subject", "1", TT_REJ_WRONG_TYPE, "subject: not a string"},
    {TT_EV_TOKEN_USED, TOP, "subject", "\"\"", TT_REJ_BAD_VALUE, "subject: empty"},
    {TT_EV_TOKEN_USED, TOP, "datacontenttype", "\"text/plain\"", TT_REJ_BAD_VALUE,
     "datacontenttype: must be \"application/json\""},
    {TT_EV_TOKEN_USED, TOP, "datacontenttype", "{}", TT_REJ_WRONG_TYPE,
     "datacontenttype: not a string"},
    {TT_EV_TOKEN_USED, TOP, "datacontenttype", "\"application/json\"", OK, NULL},
    {TT_EV_TOKEN_USED, TOP, "dataschema", "false", TT_REJ_WRONG_TYPE, "dataschema: not a string"},
    /* extensions */
    {TT_EV_TOKEN_USED, TOP, "traceparent", "\"00-abc-def-01\"", OK, NULL},
    {TT_EV_TOKEN_USED, TOP, "a1", "-5", OK, NULL},
    {TT_EV_TOKEN_USED, TOP, "abcdefghij0123456789", "false", OK, NULL},
    {TT_EV_TOKEN_USED, TOP, "abcdefghij01234567890", "false", TT_REJ_UNKNOWN_FIELD,
     "abcdefghij01234567890: unknown attribute"},
    {TT_EV_TOKEN_USED, TOP, "trace_id", "\"x\"", TT_REJ_UNKNOWN_FIELD, "trace_id: unknown attribute"},
    {TT_EV_TOKEN_USED, TOP, "Trace", "\"x\"", TT_REJ_UNKNOWN_FIELD, "Trace: unknown attribute"},
    {TT_EV_TOKEN_USED, TOP, "data_base64", "\"eA==\"", TT_REJ_UNKNOWN_FIELD,
     "data_base64: unknown attribute"},
    {TT_EV_TOKEN_USED, TOP, "", "1", TT_REJ_UNKNOWN_FIELD, ": unknown attribute"},
    {TT_EV_TOKEN_USED, TOP, "k\xc3\xa9y\n", "1", TT_REJ_UNKNOWN_FIELD, "k??y?: unknown attribute"},
    {TT_EV_TOKEN_USED, TOP, "ext", "null", TT_REJ_WRONG_TYPE, "ext: not a string, number or boolean"},
    {TT_EV_TOKEN_USED, TOP, "ext", "{}", TT_REJ_WRONG_TYPE, "ext: not a string, number or boolean"},
    {TT_EV_TOKEN_USED, TOP, "ext", "[1]", TT_REJ_WRONG_TYPE, "ext: not a string, number or boolean"},
    {TT_EV_TOKEN_USED, TOP, "ext", "\"\"", TT_REJ_BAD_VALUE, "ext: empty"},
    /* names of credentials: refused whatever the value (a raw token would be stored) */
    {TT_EV_TOKEN_USED, TOP, "token", "\"SECRETEXTTOKEN-ccdd\"", TT_REJ_UNKNOWN_FIELD,
     "token: extension attribute named like a credential ('token'): tokentrail stores no raw "
     "tokens or secrets; send a token as data.token to have it fingerprinted"},
    {TT_EV_TOKEN_USED, TOP, "accesstoken", "1", TT_REJ_UNKNOWN_FIELD,
     "accesstoken: extension attribute named like a credential ('token'): tokentrail stores no "
     "raw tokens or secrets; send a token as data.token to have it fingerprinted"},
    {TT_EV_TOKEN_USED, TOP, "clientsecret", "\"s\"", TT_REJ_UNKNOWN_FIELD,
     "clientsecret: extension attribute named like a credential ('secret'): tokentrail stores "
     "no raw tokens or secrets; send a token as data.token to have it fingerprinted"},
    {TT_EV_TOKEN_USED, TOP, "password1", "\"p\"", TT_REJ_UNKNOWN_FIELD,
     "password1: extension attribute named like a credential ('passw'): tokentrail stores no "
     "raw tokens or secrets; send a token as data.token to have it fingerprinted"},
    {TT_EV_TOKEN_USED, TOP, "authorization", "\"Bearer x\"", TT_REJ_UNKNOWN_FIELD,
     "authorization: extension attribute named like a credential ('authoriz'): tokentrail stores "
     "no raw tokens or secrets; send a token as data.token to have it fingerprinted"},
    {TT_EV_TOKEN_USED, TOP, "traceparent", "\"00-abc-def-01\"", OK, NULL},
    /* data */
    {TT_EV_TOKEN_USED, TOP, "data", NULL, TT_REJ_MISSING, "data: missing"},
    {TT_EV_TOKEN_USED, TOP, "data", "[]", TT_REJ_WRONG_TYPE, "data: not an object"},
    {TT_EV_TOKEN_USED, TOP, "data", "\"{}\"", TT_REJ_WRONG_TYPE, "data: not an object"},
    {TT_EV_TOKEN_USED, TOP, "data", "null", TT_REJ_WRONG_TYPE, "data: not an object"},

    /* token_id / token */
    {TT_EV_TOKEN_USED, DATA, "token_id", NULL, TT_REJ_MISSING,
     "data.token_id: missing (send token_id or token)"},
    {TT_EV_TOKEN_REVOKED, DATA, "token_id", NULL, TT_REJ_MISSING,
     "data.token_id: missing (send token_id or token)"},
    {TT_EV_TOKEN_USED, DATA, "token_id", "42", TT_REJ_WRONG_TYPE, "data.token_id: not a string"},
    {TT_EV_TOKEN_USED, DATA, "token_id", "\"\"", TT_REJ_BAD_VALUE, "data.token_id: empty"},
    {TT_EV_TOKEN_USED, DATA, "token_id", "\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzM2NyM3QifQ.sig\"",
     TT_REJ_BAD_VALUE,
     "data.token_id: looks like a raw JWT; send it as data.token to have it fingerprinted"},
    {TT_EV_TOKEN_USED, DATA, "token_id", "\"eyJ-not-a-jwt.x\"", OK, NULL},
    {TT_EV_TOKEN_USED, DATA, "token_id", "\"sha256:abc\"", TT_REJ_BAD_VALUE,
     "data.token_id: malformed sha256 fingerprint"},
    {TT_EV_TOKEN_USED, DATA, "token_id",
     "\"sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"",
     TT_REJ_BAD_VALUE, "data.token_id: malformed sha256 fingerprint"},
    {TT_EV_TOKEN_USED, DATA, "token_id", "\"" FP_ABC "\"", OK, NULL},
    {TT_EV_TOKEN_USED, DATA, "token", "\"abc\"", TT_REJ_BAD_VALUE,
     "data.token_id: does not match the fingerprint of data.token"},
    {TT_EV_TOKEN_USED, DATA, "token", "7", TT_REJ_WRONG_TYPE, "data.token: not a string"},
    {TT_EV_TOKEN_USED, DATA, "token", "\"\"", TT_REJ_BAD_VALUE, "data.token: empty"},
    /* client_id: required on issued only */
    {TT_EV_TOKEN_ISSUED, DATA, "client_id", NULL, TT_REJ_MISSING, "data.client_id: missing"},
    {TT_EV_TOKEN_USED, DATA, "client_id", "\"c1\"", OK, NULL},
    {TT_EV_TOKEN_REVOKED, DATA, "client_id", "true", TT_REJ_WRONG_TYPE, "data.client_id: not a string"},
    /* subject */
    {TT_EV_TOKEN_ISSUED, DATA, "subject", "{}", TT_REJ_WRONG_TYPE, "data.subject: not a string"},
    {TT_EV_TOKEN_ISSUED, DATA, "subject", "\"\"", TT_REJ_BAD_VALUE, "data.subject: empty"},
    /* scopes */
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", NULL, TT_REJ_MISSING, "data.scopes: missing"},
    {TT_EV_TOKEN_USED, DATA, "scopes", "\"read write\"", OK, NULL},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "7", TT_REJ_WRONG_TYPE, "data.scopes: not a string or array"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "{}", TT_REJ_WRONG_TYPE, "data.scopes: not a string or array"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "null", TT_REJ_WRONG_TYPE, "data.scopes: not a string or array"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "[\"a\",\"b\",\"c\",7]", TT_REJ_WRONG_TYPE,
     "data.scopes[3]: not a string"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "[\"a\",\"\"]", TT_REJ_BAD_VALUE, "data.scopes[1]: empty"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "[\"a\",\"b c\"]", TT_REJ_BAD_VALUE,
     "data.scopes[1]: invalid scope character"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "\"a " SECRET "\\\"\"", TT_REJ_BAD_VALUE,
     "data.scopes[1]: invalid scope character"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "\"a b\\\\c\"", TT_REJ_BAD_VALUE,
     "data.scopes[1]: invalid scope character"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "\"a\\tb\"", TT_REJ_BAD_VALUE,
     "data.scopes[0]: invalid scope character"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "[\"\\u007f\"]", TT_REJ_BAD_VALUE,
     "data.scopes[0]: invalid scope character"},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "[\"caf\\u00e9\"]", TT_REJ_BAD_VALUE,
     "data.scopes[0]: invalid scope character"},
    /* audience */
    {TT_EV_TOKEN_USED, DATA, "audience", "1", TT_REJ_WRONG_TYPE, "data.audience: not a string or array"},
    {TT_EV_TOKEN_USED, DATA, "audience", "[null]", TT_REJ_WRONG_TYPE, "data.audience[0]: not a string"},
    {TT_EV_TOKEN_USED, DATA, "audience", "\"\"", TT_REJ_BAD_VALUE, "data.audience[0]: empty"},
    /* grant_type */
    {TT_EV_TOKEN_ISSUED, DATA, "grant_type", "[]", TT_REJ_WRONG_TYPE, "data.grant_type: not a string"},
    {TT_EV_TOKEN_ISSUED, DATA, "grant_type", "\"urn:ietf:params:oauth:grant-type:device_code\"", OK,
     NULL},
    /* token_type */
    {TT_EV_TOKEN_ISSUED, DATA, "token_type", "\"id\"", TT_REJ_BAD_VALUE,
     "data.token_type: must be one of access, refresh"},
    {TT_EV_TOKEN_ISSUED, DATA, "token_type", "\"Access\"", TT_REJ_BAD_VALUE,
     "data.token_type: must be one of access, refresh"},
    {TT_EV_TOKEN_ISSUED, DATA, "token_type", "\"\"", TT_REJ_BAD_VALUE,
     "data.token_type: must be one of access, refresh"},
    {TT_EV_TOKEN_USED, DATA, "token_type", "1", TT_REJ_WRONG_TYPE, "data.token_type: not a string"},
    /* issued_at / expires_at */
    {TT_EV_TOKEN_ISSUED, DATA, "issued_at", NULL, TT_REJ_MISSING, "data.issued_at: missing"},
    {TT_EV_TOKEN_ISSUED, DATA, "expires_at", NULL, TT_REJ_MISSING, "data.expires_at: missing"},
    {TT_EV_TOKEN_USED, DATA, "expires_at", "5", OK, NULL},
    {TT_EV_TOKEN_ISSUED, DATA, "issued_at", "\"soon\"", TT_REJ_TIMESTAMP,
     "data.issued_at: not a timestamp"},
    {TT_EV_TOKEN_ISSUED, DATA, "issued_at", "[]", TT_REJ_TIMESTAMP, "data.issued_at: not a timestamp"},
    {TT_EV_TOKEN_ISSUED, DATA, "issued_at", "-5", TT_REJ_TIMESTAMP,
     "data.issued_at: timestamp out of range"},
    {TT_EV_TOKEN_ISSUED, DATA, "expires_at", "\"1e3\"", TT_REJ_TIMESTAMP,
     "data.expires_at: not a timestamp"},
    {TT_EV_TOKEN_ISSUED, DATA, "issued_at", "2", TT_REJ_BAD_VALUE, "data.expires_at: before data.issued_at"},
    {TT_EV_TOKEN_ISSUED, DATA, "issued_at", "1", OK, NULL},
    {TT_EV_TOKEN_REVOKED, DATA, "issued_at", "\"1970-01-01T00:00:01Z\"", OK, NULL},
    /* incident_id */
    {TT_EV_TOKEN_USED, DATA, "incident_id", "1", TT_REJ_WRONG_TYPE, "data.incident_id: not a string"},
    {TT_EV_INCIDENT_OPENED, DATA, "incident_id", NULL, TT_REJ_MISSING, "data.incident_id: missing"},
    {TT_EV_INCIDENT_RESOLVED, DATA, "incident_id", NULL, TT_REJ_MISSING, "data.incident_id: missing"},
    {TT_EV_INCIDENT_RESOLVED, DATA, "incident_id", "\"\"", TT_REJ_BAD_VALUE, "data.incident_id: empty"},
    /* token.used fields */
    {TT_EV_TOKEN_USED, DATA, "resource", NULL, TT_REJ_MISSING, "data.resource: missing"},
    {TT_EV_TOKEN_USED, DATA, "resource", "[\"api\"]", TT_REJ_WRONG_TYPE, "data.resource: not a string"},
    {TT_EV_TOKEN_USED, DATA, "method", "\"get\"", TT_REJ_BAD_VALUE,
     "data.method: must be uppercase letters A-Z"},
    {TT_EV_TOKEN_USED, DATA, "method", "\"M-SEARCH\"", TT_REJ_BAD_VALUE,
     "data.method: must be uppercase letters A-Z"},
    {TT_EV_TOKEN_USED, DATA, "method", "\"\"", TT_REJ_BAD_VALUE, "data.method: empty"},
    {TT_EV_TOKEN_USED, DATA, "method", "\"ABCDEFGHIJKLMNOPQ\"", TT_REJ_TOO_LONG,
     "data.method: longer than 16 bytes"},
    {TT_EV_TOKEN_USED, DATA, "method", "\"ABCDEFGHIJKLMNOP\"", OK, NULL},
    {TT_EV_TOKEN_USED, DATA, "method", "1", TT_REJ_WRONG_TYPE, "data.method: not a string"},
    {TT_EV_TOKEN_USED, DATA, "path", "1", TT_REJ_WRONG_TYPE, "data.path: not a string"},
    {TT_EV_TOKEN_USED, DATA, "status", "\"200\"", TT_REJ_WRONG_TYPE, "data.status: not an integer"},
    {TT_EV_TOKEN_USED, DATA, "status", "200.0", TT_REJ_WRONG_TYPE, "data.status: not an integer"},
    {TT_EV_TOKEN_USED, DATA, "status", "99", TT_REJ_BAD_VALUE, "data.status: out of range 100..599"},
    {TT_EV_TOKEN_USED, DATA, "status", "600", TT_REJ_BAD_VALUE, "data.status: out of range 100..599"},
    {TT_EV_TOKEN_USED, DATA, "status", "-200", TT_REJ_BAD_VALUE, "data.status: out of range 100..599"},
    {TT_EV_TOKEN_USED, DATA, "status", "9223372036854775807", TT_REJ_BAD_VALUE,
     "data.status: out of range 100..599"},
    {TT_EV_TOKEN_USED, DATA, "status", "100", OK, NULL},
    {TT_EV_TOKEN_USED, DATA, "status", "599", OK, NULL},
    {TT_EV_TOKEN_USED, DATA, "ip", "\"10.0.0.256\"", TT_REJ_BAD_VALUE, "data.ip: not an IP address"},
    {TT_EV_TOKEN_USED, DATA, "ip", "\"" SECRET "\"", TT_REJ_BAD_VALUE, "data.ip: not an IP address"},
    {TT_EV_TOKEN_USED, DATA, "ip", "\"fe80::1%eth0\"", TT_REJ_BAD_VALUE, "data.ip: not an IP address"},
    {TT_EV_TOKEN_USED, DATA, "ip", "\" 10.0.0.1\"", TT_REJ_BAD_VALUE, "data.ip: not an IP address"},
    {TT_EV_TOKEN_USED, DATA, "ip", "\"::ffff:192.0.2.1\"", OK, NULL},
    {TT_EV_TOKEN_USED, DATA, "ip", "\"\"", TT_REJ_BAD_VALUE, "data.ip: empty"},
    {TT_EV_TOKEN_USED, DATA, "ip", "167772161", TT_REJ_WRONG_TYPE, "data.ip: not a string"},
    {TT_EV_TOKEN_USED, DATA, "ip",
     "\"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:00\"", TT_REJ_TOO_LONG,
     "data.ip: longer than 64 bytes"},
    /* token.revoked fields */
    {TT_EV_TOKEN_REVOKED, DATA, "reason", "1", TT_REJ_WRONG_TYPE, "data.reason: not a string"},
    {TT_EV_TOKEN_REVOKED, DATA, "actor", "false", TT_REJ_WRONG_TYPE, "data.actor: not a string"},
    /* incident fields */
    {TT_EV_INCIDENT_OPENED, DATA, "title", "1", TT_REJ_WRONG_TYPE, "data.title: not a string"},
    {TT_EV_INCIDENT_OPENED, DATA, "severity", NULL, TT_REJ_MISSING, "data.severity: missing"},
    {TT_EV_INCIDENT_RESOLVED, DATA, "severity", "\"low\"", OK, NULL},
    {TT_EV_INCIDENT_OPENED, DATA, "severity", "3", TT_REJ_WRONG_TYPE, "data.severity: not a string"},
    {TT_EV_INCIDENT_OPENED, DATA, "services", NULL, TT_REJ_MISSING, "data.services: missing"},
    {TT_EV_INCIDENT_OPENED, DATA, "services", "\"api\"", TT_REJ_WRONG_TYPE,
     "data.services: not an array"},
    {TT_EV_INCIDENT_OPENED, DATA, "services", "[\"api\",{}]", TT_REJ_WRONG_TYPE,
     "data.services[1]: not a string"},
    {TT_EV_INCIDENT_OPENED, DATA, "services", "[\"\"]", TT_REJ_BAD_VALUE, "data.services[0]: empty"},
    {TT_EV_INCIDENT_RESOLVED, DATA, "services", "{}", TT_REJ_WRONG_TYPE, "data.services: not an array"},
    {TT_EV_INCIDENT_OPENED, DATA, "opened_at", NULL, TT_REJ_MISSING, "data.opened_at: missing"},
    {TT_EV_INCIDENT_OPENED, DATA, "opened_at", "null", TT_REJ_TIMESTAMP, "data.opened_at: not a timestamp"},
    {TT_EV_INCIDENT_RESOLVED, DATA, "resolved_at", NULL, TT_REJ_MISSING, "data.resolved_at: missing"},
    {TT_EV_INCIDENT_RESOLVED, DATA, "resolved_at", "\"1969-12-31T23:59:59Z\"", TT_REJ_TIMESTAMP,
     "data.resolved_at: timestamp out of range"},
    /* fields that belong to another type are unknown here */
    {TT_EV_TOKEN_ISSUED, DATA, "status", "200", TT_REJ_UNKNOWN_FIELD, "data.status: unknown field"},
    {TT_EV_TOKEN_USED, DATA, "reason", "\"x\"", TT_REJ_UNKNOWN_FIELD, "data.reason: unknown field"},
    {TT_EV_TOKEN_REVOKED, DATA, "resource", "\"x\"", TT_REJ_UNKNOWN_FIELD, "data.resource: unknown field"},
    {TT_EV_INCIDENT_OPENED, DATA, "token_id", "\"t1\"", TT_REJ_UNKNOWN_FIELD,
     "data.token_id: unknown field"},
    {TT_EV_INCIDENT_OPENED, DATA, "token", "\"abc\"", TT_REJ_UNKNOWN_FIELD, "data.token: unknown field"},
    {TT_EV_INCIDENT_OPENED, DATA, "resolved_at", "0", TT_REJ_UNKNOWN_FIELD,
     "data.resolved_at: unknown field"},
    {TT_EV_INCIDENT_RESOLVED, DATA, "opened_at", "0", TT_REJ_UNKNOWN_FIELD,
     "data.opened_at: unknown field"},
    /* stray secrets are rejected by name, never echoed */
    {TT_EV_TOKEN_USED, DATA, "access_token", "\"" SECRET "-value\"", TT_REJ_UNKNOWN_FIELD,
     "data.access_token: unknown field"},
    {TT_EV_TOKEN_ISSUED, DATA, "refresh_token", "\"" SECRET "\"", TT_REJ_UNKNOWN_FIELD,
     "data.refresh_token: unknown field"},
    {TT_EV_TOKEN_REVOKED, DATA, "password", "\"" SECRET "\"", TT_REJ_UNKNOWN_FIELD,
     "data.password: unknown field"},
    {TT_EV_INCIDENT_OPENED, DATA, "Token", "\"" SECRET "\"", TT_REJ_UNKNOWN_FIELD,
     "data.Token: unknown field"},
    {TT_EV_TOKEN_ISSUED, DATA, "client_id", "{\"x\":1}", TT_REJ_WRONG_TYPE,
     "data.client_id: not a string"},
};

static void apply_mutation(json_t *in, const mut_case *c)
{
    json_t *obj = c->where == TOP ? in : json_object_get(in, "data");
    if (c->value == NULL) {
        ck_assert_int_eq(json_object_del(obj, c->key), 0);
    } else {
        ck_assert_int_eq(json_object_set_new(obj, c->key, load(c->value)), 0);
    }
}

static void check_rejection(const tt_event_error *err, int reason, const char *msg)
{
    ck_assert_msg((int)err->reason == reason, "reason %s, want %s (%s)",
                  tt_reject_reason_name(err->reason), tt_reject_reason_name(reason), err->msg);
    ck_assert_str_eq(err->msg, msg);
    ck_assert_ptr_null(strstr(err->msg, SECRET));
}

START_TEST(test_mutation)
{
    const mut_case *c = &mut_cases[_i];
    json_t *in = load(base_event[c->base]);
    apply_mutation(in, c);
    tt_event ev;
    tt_event_error err;
    memset(&ev, 0xa5, sizeof(ev));
    int rc = tt_event_from_json(in, &ev, &err);
    json_decref(in);
    if (c->reason == OK) {
        ck_assert_msg(rc == 0, "%s=%s rejected: %s", c->key, c->value, err.msg);
        ck_assert_int_eq(ev.type, c->base);
        tt_event_clear(&ev);
        return;
    }
    ck_assert_int_eq(rc, -1);
    check_rejection(&err, c->reason, c->msg);
    /* nothing half-built */
    ck_assert_ptr_null(ev.json);
    ck_assert_ptr_null(ev.id);
    /* attribution */
    int type_mutated = c->where == TOP && strcmp(c->key, "type") == 0;
    ck_assert_int_eq(err.type, type_mutated ? TT_EV_UNKNOWN : c->base);
    if (!(c->where == TOP && strcmp(c->key, "id") == 0)) {
        ck_assert_str_eq(err.id, "e1");
    } else {
        /* a missing, empty or non-string id is never echoed */
        ck_assert_str_eq(err.id, "");
    }
}
END_TEST

/* An unknown field is reported first even when listed after a bad known one. */
START_TEST(test_unknown_field_first)
{
    static const char in[] = EV("token.used", "\"token_id\":7,\"resource\":\"r\","
                                              "\"access_token\":\"" SECRET "\"");
    tt_event ev;
    tt_event_error err;
    ck_assert_int_eq(tt_event_parse(in, strlen(in), &ev, &err), -1);
    check_rejection(&err, TT_REJ_UNKNOWN_FIELD, "data.access_token: unknown field");
}
END_TEST

/* ---- raw bytes: parse errors, non-objects, hostile JSON ---- */

typedef struct {
    const char *buf;
    size_t len; /* 0: strlen(buf) */
    int reason;
    const char *msg;
} raw_case;

static const raw_case raw_cases[] = {
    {"", 0, TT_REJ_PARSE, "json: unexpected token at line 1 column 0"},
    {"   ", 0, TT_REJ_PARSE, "json: unexpected token at line 1 column 3"},
    {"{", 0, TT_REJ_PARSE, "json: string or '}' expected at line 1 column 1"},
    {"{\"id\":\"e1\"}x", 0, TT_REJ_PARSE, "json: end of file expected at line 1 column 12"},
    {"{\"id\":\"e1\"} {}", 0, TT_REJ_PARSE, "json: end of file expected at line 1 column 13"},
    {"{\"id\":\"e1\"}\0", 12, TT_REJ_PARSE, "json: end of file expected at line 1 column 12"},
    {"{\"id\":\"e1\",\"id\":\"e2\"}", 0, TT_REJ_PARSE,
     "json: duplicate object key at line 1 column 15"},
    {"{\"data\":{\"token\":\"a\",\"token\":\"b\"}}", 0, TT_REJ_PARSE,
     "json: duplicate object key at line 1 column 28"},
    {"{\"data\":{\"status\":99999999999999999999}}", 0, TT_REJ_PARSE,
     "json: too big integer at line 1 column 38"},
    {"{\"data\":{\"status\":-99999999999999999999}}", 0, TT_REJ_PARSE,
     "json: too big negative integer at line 1 column 39"},
    {"{\"data\":{\"status\":1e400}}", 0, TT_REJ_PARSE,
     "json: real number overflow at line 1 column 23"},
    {"{\"data\":{\"token\":\"a\\u0000b\"}}", 0, TT_REJ_PARSE,
     "json: \\u0000 is not allowed without JSON_ALLOW_NUL at line 1 column 27"},
    {"{\"data\":{\"token\":\"a\xff" SECRET "\"}}", 0, TT_REJ_PARSE,
     "json: unable to decode byte 0xff at line 1 column 19"},
    {"{\"data\":{\"token\":\"\xc3\x28\"}}", 0, TT_REJ_PARSE,
     "json: unable to decode byte 0xc3 at line 1 column 18"},
    {"{\"data\":{\"token\":\"\xed\xa0\x80\"}}", 0, TT_REJ_PARSE,
     "json: unable to decode byte 0xed at line 1 column 18"},
    {"{\"\xff\":1}", 0, TT_REJ_PARSE, "json: unable to decode byte 0xff at line 1 column 2"},
    /* the unterminated secret must not be echoed by jansson's "near" text */
    {"{\"data\":{\"token\":\"" SECRET "value", 0, TT_REJ_PARSE,
     "json: premature end of input at line 1 column 29"},
    {"{\"data\":{\"token\":" SECRET "}}", 0, TT_REJ_PARSE, "json: invalid token at line 1 column 18"},
    {"{'id':1}", 0, TT_REJ_PARSE, "json: string or '}' expected at line 1 column 2"},
    {"{\"id\":1,}", 0, TT_REJ_PARSE, "json: string or '}' expected at line 1 column 9"},
    {"{\"id\":\"a\tb\"}", 0, TT_REJ_PARSE, "json: control character 0x9 at line 1 column 8"},
    {"[]", 0, TT_REJ_NOT_OBJECT, "event: not a JSON object"},
    {"[{\"specversion\":\"1.0\"}]", 0, TT_REJ_NOT_OBJECT, "event: not a JSON object"},
    {"\"" SECRET "\"", 0, TT_REJ_NOT_OBJECT, "event: not a JSON object"},
    {"42", 0, TT_REJ_NOT_OBJECT, "event: not a JSON object"},
    {"-1.5e3", 0, TT_REJ_NOT_OBJECT, "event: not a JSON object"},
    {"null", 0, TT_REJ_NOT_OBJECT, "event: not a JSON object"},
    {"true", 0, TT_REJ_NOT_OBJECT, "event: not a JSON object"},
    {"{}", 0, TT_REJ_MISSING, "specversion: missing"},
};

START_TEST(test_raw)
{
    const raw_case *c = &raw_cases[_i];
    size_t len = c->len != 0 ? c->len : strlen(c->buf);
    tt_event ev;
    tt_event_error err;
    ck_assert_int_eq(tt_event_parse(c->buf, len, &ev, &err), -1);
    check_rejection(&err, c->reason, c->msg);
    ck_assert_ptr_null(ev.json);
    ck_assert_int_eq(err.type, TT_EV_UNKNOWN);
    ck_assert_str_eq(err.id, "");
}
END_TEST

typedef struct {
    int depth;
    int reason;
} depth_case;

static const depth_case depth_cases[] = {
    {10000, TT_REJ_PARSE},
    {2049, TT_REJ_PARSE},
    {2000, TT_REJ_UNKNOWN_FIELD},
};

/* {"specversion":"1.0",...,"data":{"token_id":"t1","resource":"r","x":[[[...]]]}} */
START_TEST(test_deep_nesting)
{
    const depth_case *c = &depth_cases[_i];
    static const char head[] = "{" HDR("token.used") ",\"data\":{\"token_id\":\"t1\","
                                                      "\"resource\":\"r\",\"x\":";
    static const char tail[] = "}}";
    size_t hl = strlen(head);
    size_t n = (size_t)c->depth;
    size_t len = hl + 2 * n + strlen(tail);
    char *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, head, hl);
    memset(buf + hl, '[', n);
    memset(buf + hl + n, ']', n);
    memcpy(buf + hl + 2 * n, tail, strlen(tail));
    tt_event ev;
    tt_event_error err;
    int rc = tt_event_parse(buf, len, &ev, &err);
    free(buf);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg((int)err.reason == c->reason, "depth %d: %s", c->depth, err.msg);
    if (c->reason == TT_REJ_PARSE) {
        ck_assert_ptr_nonnull(strstr(err.msg, "json: maximum parsing depth reached at line 1"));
    } else {
        ck_assert_str_eq(err.msg, "data.x: unknown field");
    }
}
END_TEST

/* ---- limits: exactly at the limit passes, one byte over fails ---- */

typedef struct {
    tt_event_type base;
    enum where where;
    const char *key;
    const char *path;   /* as it appears in the message */
    size_t limit;
    char fill;
    int wrap;           /* 1: value is ["<s>"] instead of "<s>" */
} limit_case;

static const limit_case limit_cases[] = {
    {TT_EV_TOKEN_USED, TOP, "id", "id", TT_EV_MAX_ID, 'a', 0},
    {TT_EV_TOKEN_USED, TOP, "source", "source", TT_EV_MAX_SOURCE, 'a', 0},
    {TT_EV_TOKEN_USED, TOP, "subject", "subject", TT_EV_MAX_TEXT, 'a', 0},
    {TT_EV_TOKEN_USED, TOP, "dataschema", "dataschema", TT_EV_MAX_SOURCE, 'a', 0},
    {TT_EV_TOKEN_USED, TOP, "myext", "myext", TT_EV_MAX_TEXT, 'a', 0},
    {TT_EV_TOKEN_USED, DATA, "token_id", "data.token_id", TT_EV_MAX_ID, 'a', 0},
    {TT_EV_TOKEN_ISSUED, DATA, "client_id", "data.client_id", TT_EV_MAX_ID, 'a', 0},
    {TT_EV_TOKEN_ISSUED, DATA, "subject", "data.subject", TT_EV_MAX_TEXT, 'a', 0},
    {TT_EV_TOKEN_ISSUED, DATA, "grant_type", "data.grant_type", TT_EV_MAX_SCOPE, 'a', 0},
    {TT_EV_TOKEN_ISSUED, DATA, "incident_id", "data.incident_id", TT_EV_MAX_ID, 'a', 0},
    {TT_EV_TOKEN_USED, DATA, "resource", "data.resource", TT_EV_MAX_TEXT, 'a', 0},
    {TT_EV_TOKEN_USED, DATA, "path", "data.path", TT_EV_MAX_PATH, '/', 0},
    {TT_EV_TOKEN_USED, DATA, "method", "data.method", 16, 'A', 0},
    {TT_EV_TOKEN_REVOKED, DATA, "token", "data.token", TT_EV_MAX_TOKEN, 'x', 0},
    {TT_EV_TOKEN_REVOKED, DATA, "reason", "data.reason", TT_EV_MAX_TEXT, 'a', 0},
    {TT_EV_TOKEN_REVOKED, DATA, "actor", "data.actor", TT_EV_MAX_TEXT, 'a', 0},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "data.scopes[0]", TT_EV_MAX_SCOPE, 's', 1},
    {TT_EV_TOKEN_ISSUED, DATA, "scopes", "data.scopes[0]", TT_EV_MAX_SCOPE, 's', 0},
    {TT_EV_TOKEN_ISSUED, DATA, "audience", "data.audience[0]", TT_EV_MAX_SCOPE, 'a', 1},
    {TT_EV_TOKEN_ISSUED, DATA, "audience", "data.audience[0]", TT_EV_MAX_SCOPE, 'a', 0},
    {TT_EV_INCIDENT_OPENED, DATA, "title", "data.title", TT_EV_MAX_TEXT, 'a', 0},
    {TT_EV_INCIDENT_OPENED, DATA, "severity", "data.severity", 32, 'a', 0},
    {TT_EV_INCIDENT_OPENED, DATA, "services", "data.services[0]", TT_EV_MAX_SCOPE, 'a', 1},
    {TT_EV_INCIDENT_RESOLVED, DATA, "incident_id", "data.incident_id", TT_EV_MAX_ID, 'a', 0},
};

static int run_with_string(const limit_case *c, size_t n, tt_event_error *err)
{
    json_t *in = load(base_event[c->base]);
    json_t *obj = c->where == TOP ? in : json_object_get(in, "data");
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c->fill, n);
    s[n] = '\0';
    json_t *v = json_stringn(s, n);
    free(s);
    if (c->wrap) {
        json_t *arr = json_array();
        json_array_append_new(arr, v);
        v = arr;
    }
    json_object_set_new(obj, c->key, v);
    if (strcmp(c->key, "token") == 0) {
        json_object_del(obj, "token_id");
    }
    tt_event ev;
    int rc = tt_event_from_json(in, &ev, err);
    tt_event_clear(&ev);
    json_decref(in);
    return rc;
}

START_TEST(test_limit_exact)
{
    const limit_case *c = &limit_cases[_i];
    tt_event_error err;
    int rc = run_with_string(c, c->limit, &err);
    ck_assert_msg(rc == 0, "%s at %zu bytes rejected: %s", c->path, c->limit, err.msg);
}
END_TEST

START_TEST(test_limit_over)
{
    const limit_case *c = &limit_cases[_i];
    tt_event_error err;
    char want[128];
    snprintf(want, sizeof(want), "%s: longer than %zu bytes", c->path, c->limit);
    ck_assert_int_eq(run_with_string(c, c->limit + 1, &err), -1);
    check_rejection(&err, TT_REJ_TOO_LONG, want);
}
END_TEST

typedef struct {
    tt_event_type base;
    const char *key;
    size_t entries;
    int as_string;      /* 1: space-separated scope string */
    int ok;
} count_case;

static const count_case count_cases[] = {
    {TT_EV_TOKEN_ISSUED, "scopes", TT_EV_MAX_LIST, 0, 1},
    {TT_EV_TOKEN_ISSUED, "scopes", TT_EV_MAX_LIST + 1, 0, 0},
    {TT_EV_TOKEN_ISSUED, "scopes", 300, 0, 0},
    {TT_EV_TOKEN_ISSUED, "scopes", TT_EV_MAX_LIST, 1, 1},
    {TT_EV_TOKEN_ISSUED, "scopes", TT_EV_MAX_LIST + 1, 1, 0},
    {TT_EV_TOKEN_USED, "scopes", 300, 1, 0},
    {TT_EV_TOKEN_USED, "audience", TT_EV_MAX_LIST, 0, 1},
    {TT_EV_TOKEN_USED, "audience", 300, 0, 0},
    {TT_EV_INCIDENT_OPENED, "services", TT_EV_MAX_LIST, 0, 1},
    {TT_EV_INCIDENT_OPENED, "services", 300, 0, 0},
};

START_TEST(test_list_count)
{
    const count_case *c = &count_cases[_i];
    json_t *in = load(base_event[c->base]);
    json_t *v;
    char item[32];
    if (c->as_string) {
        /* "s0 s1 s2 ..." */
        char *s = malloc(c->entries * 8 + 1);
        size_t pos = 0;
        for (size_t i = 0; i < c->entries; i++) {
            pos += (size_t)snprintf(s + pos, 9, "%ss%zu", i ? " " : "", i);
        }
        v = json_stringn(s, pos);
        free(s);
    } else {
        v = json_array();
        for (size_t i = 0; i < c->entries; i++) {
            snprintf(item, sizeof(item), "s%zu", i);
            json_array_append_new(v, json_string(item));
        }
    }
    json_object_set_new(json_object_get(in, "data"), c->key, v);
    tt_event ev;
    tt_event_error err;
    int rc = tt_event_from_json(in, &ev, &err);
    json_decref(in);
    if (c->ok) {
        ck_assert_msg(rc == 0, "%s", err.msg);
        const json_t *out = json_object_get(json_object_get(ev.json, "data"), c->key);
        ck_assert_uint_eq(json_array_size(out), c->entries);
        /* sorted by strcmp: "s0" < "s1" < "s10" < "s100" < ... */
        for (size_t i = 1; i < json_array_size(out); i++) {
            ck_assert_int_lt(strcmp(json_string_value(json_array_get(out, i - 1)),
                                    json_string_value(json_array_get(out, i))),
                             0);
        }
        tt_event_clear(&ev);
    } else {
        char want[64];
        snprintf(want, sizeof(want), "data.%s: more than %d entries", c->key, TT_EV_MAX_LIST);
        ck_assert_int_eq(rc, -1);
        check_rejection(&err, TT_REJ_TOO_LONG, want);
    }
}
END_TEST

/* 16 extensions pass, the 17th is refused. */
START_TEST(test_extension_count)
{
    for (int n = TT_EV_MAX_EXTENSIONS; n <= TT_EV_MAX_EXTENSIONS + 1; n++) {
        json_t *in = load(base_event[TT_EV_TOKEN_REVOKED]);
        char key[16];
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof(key), "x%02d", i);
            json_object_set_new(in, key, json_integer(i));
        }
        tt_event ev;
        tt_event_error err;
        int rc = tt_event_from_json(in, &ev, &err);
        json_decref(in);
        if (n == TT_EV_MAX_EXTENSIONS) {
            ck_assert_msg(rc == 0, "%s", err.msg);
            ck_assert_int_eq(json_integer_value(json_object_get(ev.json, "x15")), 15);
            tt_event_clear(&ev);
        } else {
            ck_assert_int_eq(rc, -1);
            check_rejection(&err, TT_REJ_TOO_LONG, "x16: more than 16 extension attributes");
        }
    }
}
END_TEST

/* Strings with NUL built through the API (the parser cannot produce them). */
typedef struct {
    enum where where;
    const char *key;
    const char *path;
} nul_case;

static const nul_case nul_cases[] = {
    {TOP, "id", "id"},
    {TOP, "source", "source"},
    {DATA, "token_id", "data.token_id"},
    {DATA, "resource", "data.resource"},
    {DATA, "ip", "data.ip"},
};

START_TEST(test_embedded_nul)
{
    const nul_case *c = &nul_cases[_i];
    json_t *in = load(base_event[TT_EV_TOKEN_USED]);
    json_t *obj = c->where == TOP ? in : json_object_get(in, "data");
    json_object_set_new(obj, c->key, json_stringn("1.2.3.4\0x", 9));
    tt_event ev;
    tt_event_error err;
    ck_assert_int_eq(tt_event_from_json(in, &ev, &err), -1);
    json_decref(in);
    char want[64];
    snprintf(want, sizeof(want), "%s: contains a NUL byte", c->path);
    check_rejection(&err, TT_REJ_BAD_VALUE, want);
}
END_TEST

START_TEST(test_null_and_nonobject_input)
{
    tt_event ev;
    tt_event_error err;
    ck_assert_int_eq(tt_event_from_json(NULL, &ev, &err), -1);
    check_rejection(&err, TT_REJ_NOT_OBJECT, "event: not a JSON object");
    json_t *arr = json_array();
    ck_assert_int_eq(tt_event_from_json(arr, &ev, &err), -1);
    check_rejection(&err, TT_REJ_NOT_OBJECT, "event: not a JSON object");
    json_decref(arr);
    ck_assert_ptr_null(tt_event_dump(NULL));
    tt_event_clear(NULL);
    tt_event_clear(&ev);
}
END_TEST

/* ---- names ---- */

typedef struct {
    tt_event_type t;
    const char *name;
} type_name_case;

static const type_name_case type_names[] = {
    {TT_EV_UNKNOWN, "unknown"},
    {TT_EV_TOKEN_ISSUED, "token.issued"},
    {TT_EV_TOKEN_USED, "token.used"},
    {TT_EV_TOKEN_REVOKED, "token.revoked"},
    {TT_EV_INCIDENT_OPENED, "incident.opened"},
    {TT_EV_INCIDENT_RESOLVED, "incident.resolved"},
};

START_TEST(test_type_names)
{
    const type_name_case *c = &type_names[_i];
    ck_assert_str_eq(tt_event_type_name(c->t), c->name);
    tt_event_type want = c->t;
    ck_assert_int_eq(tt_event_type_from_name(c->name), want);
}
END_TEST

START_TEST(test_type_names_edge)
{
    ck_assert_str_eq(tt_event_type_name(TT_EV__COUNT), "unknown");
    ck_assert_int_eq(tt_event_type_from_name(NULL), TT_EV_UNKNOWN);
    ck_assert_int_eq(tt_event_type_from_name("token.issued "), TT_EV_UNKNOWN);
}
END_TEST

static const char *const reason_names[TT_REJ__COUNT] = {
    "parse_error", "not_object", "missing_field", "wrong_type", "bad_value",
    "bad_timestamp", "too_long", "unknown_field", "unknown_type",
};

START_TEST(test_reason_names)
{
    ck_assert_str_eq(tt_reject_reason_name((tt_reject_reason)_i), reason_names[_i]);
}
END_TEST

/* ---- tt_event_parse reads the plain case in place; jansson does the rest ----
 * The in-place reader and tt_event_from_json share one validator, so every
 * input must get the same verdict, message and output either way. */

static char *dump_or_null(const tt_event *ev)
{
    return ev->json ? json_dumps(ev->json, JSON_COMPACT) : NULL;
}

static void assert_same_str(const char *what, const char *a, const char *b, const char *in)
{
    if (a == NULL || b == NULL) {
        ck_assert_msg(a == b, "%s differs for %s", what, in);
        return;
    }
    ck_assert_msg(strcmp(a, b) == 0, "%s: '%s' vs '%s' for %s", what, a, b, in);
}

/* tt_event_parse(buf) must match tt_event_from_json(json_loadb(buf)). */
static void assert_parse_matches_jansson(const char *buf, size_t len)
{
    tt_event ev1;
    tt_event ev2;
    tt_event_error e1;
    tt_event_error e2;
    int rc1 = tt_event_parse(buf, len, &ev1, &e1);
    json_error_t jerr;
    json_t *in = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (in == NULL) {
        ck_assert_msg(rc1 == -1 && e1.reason == TT_REJ_PARSE, "not JSON but accepted: %.*s",
                      (int)len, buf);
        return;
    }
    int rc2 = tt_event_from_json(in, &ev2, &e2);
    json_decref(in);
    ck_assert_msg(rc1 == rc2, "rc %d vs %d (%s / %s) for %.*s", rc1, rc2, e1.msg, e2.msg,
                  (int)len, buf);
    if (rc1 != 0) {
        ck_assert_int_eq(e1.reason, e2.reason);
        ck_assert_int_eq(e1.type, e2.type);
        assert_same_str("error", e1.msg, e2.msg, buf);
        assert_same_str("error id", e1.id, e2.id, buf);
        return;
    }
    char *d1 = dump_or_null(&ev1);
    char *d2 = dump_or_null(&ev2);
    assert_same_str("output", d1, d2, buf);
    ck_assert_int_eq(ev1.type, ev2.type);
    ck_assert(ev1.time_ms == ev2.time_ms);
    assert_same_str("id", ev1.id, ev2.id, buf);
    assert_same_str("source", ev1.source, ev2.source, buf);
    assert_same_str("token_id", ev1.token_id, ev2.token_id, buf);
    assert_same_str("incident_id", ev1.incident_id, ev2.incident_id, buf);
    free(d1);
    free(d2);
    tt_event_clear(&ev1);
    tt_event_clear(&ev2);
}

/* The same document compact, indented and ASCII-escaped. */
static void assert_json_matches(const json_t *in)
{
    static const size_t flags[] = {JSON_COMPACT, JSON_INDENT(2), JSON_COMPACT | JSON_ENSURE_ASCII};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char *text = json_dumps(in, flags[i] | JSON_ENCODE_ANY);
        ck_assert_ptr_nonnull(text);
        assert_parse_matches_jansson(text, strlen(text));
        free(text);
    }
}

START_TEST(test_scan_ok_cases)
{
    const char *in = ok_cases[_i].in;
    assert_parse_matches_jansson(in, strlen(in));
    json_t *j = load(in);
    assert_json_matches(j);
    json_decref(j);
}
END_TEST

START_TEST(test_scan_mutations)
{
    const mut_case *c = &mut_cases[_i];
    json_t *in = load(base_event[c->base]);
    apply_mutation(in, c);
    assert_json_matches(in);
    json_decref(in);
}
END_TEST

START_TEST(test_scan_limits)
{
    const limit_case *c = &limit_cases[_i];
    for (size_t n = c->limit; n <= c->limit + 1; n++) {
        json_t *in = load(base_event[c->base]);
        json_t *obj = c->where == TOP ? in : json_object_get(in, "data");
        char *s = malloc(n + 1);
        ck_assert_ptr_nonnull(s);
        memset(s, c->fill, n);
        s[n] = '\0';
        json_t *v = json_stringn(s, n);
        free(s);
        if (c->wrap) {
            json_t *arr = json_array();
            json_array_append_new(arr, v);
            v = arr;
        }
        json_object_set_new(obj, c->key, v);
        if (strcmp(c->key, "token") == 0) {
            json_object_del(obj, "token_id");
        }
        assert_json_matches(in);
        json_decref(in);
    }
}
END_TEST

START_TEST(test_scan_counts)
{
    const count_case *c = &count_cases[_i];
    json_t *in = load(base_event[c->base]);
    json_t *v = json_array();
    char item[32];
    for (size_t i = 0; i < c->entries; i++) {
        /* reverse order, so the list needs sorting */
        snprintf(item, sizeof(item), "s%zu", c->entries - i);
        json_array_append_new(v, json_string(item));
    }
    json_object_set_new(json_object_get(in, "data"), c->key, v);
    assert_json_matches(in);
    json_decref(in);
}
END_TEST

#define USED_HDR "\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"src\",\"type\":\"token.used\""
#define USED(top, data) "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\"" top ",\"data\":{" data "}}"
#define USED_DATA "\"token_id\":\"t1\",\"resource\":\"r\""

/* Inputs at the edges of what the in-place reader takes. */
static const char *const scan_edge_cases[] = {
    USED("", USED_DATA),
    " \t\r\n" USED("", USED_DATA) " \n",
    "{ \"specversion\" : \"1.0\" , \"id\":\"e1\",\"source\":\"src\",\"type\":\"token.used\","
    "\"time\":1 , \"data\" : { \"token_id\" : \"t1\" , \"resource\" : \"r\" } }",
    USED("", USED_DATA ",\"status\":200,\"method\":\"GET\",\"ip\":\"::1\",\"path\":\"/x?y=1\""),
    USED("", USED_DATA ",\"status\":-0"),
    USED("", USED_DATA ",\"status\":0200"),
    USED("", USED_DATA ",\"status\":200.0"),
    USED("", USED_DATA ",\"status\":2e2"),
    USED("", USED_DATA ",\"status\":999999999999999999"),
    USED("", USED_DATA ",\"status\":9999999999999999999"),
    USED("", USED_DATA ",\"status\":-"),
    USED("", USED_DATA ",\"status\":true"),
    USED("", USED_DATA ",\"status\":null"),
    USED("", USED_DATA ",\"status\":tru"),
    USED("", USED_DATA ",\"status\":nulls"),
    USED("", USED_DATA ",\"subject\":\"Jos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91\""),
    USED("", USED_DATA ",\"subject\":\"\xe0\x80\x80\""),
    USED("", USED_DATA ",\"subject\":\"\xf4\x90\x80\x80\""),
    USED("", USED_DATA ",\"subject\":\"\xc0\xaf\""),
    USED("", USED_DATA ",\"subject\":\"\xe2\x82\""),
    USED("", USED_DATA ",\"subject\":\"\x7f\""),
    USED("", USED_DATA ",\"path\":\"\\/v1\\/x\""),
    USED("", USED_DATA ",\"path\":\"a\\u00e9b\""),
    USED("", USED_DATA ",\"scopes\":[\"b\",\"a\",\"b\"],\"audience\":[]"),
    USED("", USED_DATA ",\"scopes\":[\"a\",1]"),
    USED("", USED_DATA ",\"scopes\":[\"a\",[\"b\"]]"),
    USED("", USED_DATA ",\"scopes\":[\"a\",]"),
    USED("", USED_DATA ",\"scopes\":[ ]"),
    USED("", USED_DATA ",\"scopes\":{}"),
    USED("", USED_DATA ",\"audience\":\"x y\""),
    USED("", USED_DATA ",\"token\":\"abc\""),
    USED("", "\"token\":\"abc\",\"resource\":\"r\""),
    USED("", "\"token\":\"abc\",\"token_id\":\"" FP_ABC "\",\"resource\":\"r\""),
    USED("", "\"token_id\":\"sha256:abc\",\"resource\":\"r\""),
    USED("", "\"token_id\":\"eyJa.b.c\",\"resource\":\"r\""),
    USED("", USED_DATA ",\"resource\":\"again\""),
    USED("", USED_DATA ",\"x\":1,\"x\":2"),
    USED("", USED_DATA ",\"x\":1,\"y\":2"),
    USED("", "\"a1\":1,\"a2\":1,\"a3\":1,\"a4\":1,\"a5\":1,\"a6\":1,\"a7\":1,\"a8\":1,\"a9\":1,"
             "\"b1\":1,\"b2\":1,\"b3\":1,\"b4\":1,\"b5\":1,\"b6\":1,\"b7\":1,\"b8\":1,\"b9\":1,"
             "\"c1\":1,\"c2\":1,\"c3\":1,\"c4\":1,\"c5\":1,\"c6\":1,\"c7\":1,\"c8\":1"),
    USED(",\"zz\":\"v\",\"aa\":true,\"mm\":false,\"n1\":-5,\"r\":1.5", USED_DATA),
    USED(",\"ext\":null", USED_DATA),
    USED(",\"ext\":[]", USED_DATA),
    USED(",\"ext\":{}", USED_DATA),
    USED(",\"ext\":\"\"", USED_DATA),
    USED(",\"Ext\":1", USED_DATA),
    USED(",\"ext\":1,\"ext\":2", USED_DATA),
    USED(",\"subject\":\"s\",\"dataschema\":\"https://x\",\"datacontenttype\":\"application/json\"",
         USED_DATA),
    USED(",\"datacontenttype\":\"text/plain\"", USED_DATA),
    USED(",\"id\":\"e2\"", USED_DATA),
    "{" USED_HDR ",\"time\":\"1700000000\",\"data\":{" USED_DATA "}}",
    "{" USED_HDR ",\"time\":\"1700000000.5\",\"data\":{" USED_DATA "}}",
    "{" USED_HDR ",\"time\":1700000000123,\"data\":{" USED_DATA "}}",
    "{" USED_HDR ",\"time\":-1,\"data\":{" USED_DATA "}}",
    "{" USED_HDR ",\"time\":\"yesterday\",\"data\":{" USED_DATA "}}",
    "{" USED_HDR ",\"time\":\"10000-01-01T00:00:00Z\",\"data\":{" USED_DATA "}}",
    "{" USED_HDR ",\"time\":true,\"data\":{" USED_DATA "}}",
    "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\",\"data\":\"x\"}",
    "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\",\"data\":[]}",
    "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\",\"data\":{" USED_DATA "},\"data\":{}}",
    "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\",\"data\":{}}",
    "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\",\"data\":{" USED_DATA "}",
    "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\",\"data\":{" USED_DATA "}}}",
    "{" USED_HDR ",\"time\":\"2026-01-02T03:04:05Z\",\"data\":{" USED_DATA ",}}",
    "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"src\",\"type\":\"token.usedx\"}",
    "{\"specversion\":\"1.0\",\"id\":7,\"source\":\"src\",\"type\":\"token.used\"}",
    "{\"specversion\":1.0}",
    "{}",
    "{ }",
    "{\"a\":1}",
    "[]",
    "",
    "{\"specversion\":\"1.0\"",
    "{\"specversion\":\"1.0\",",
    "{\"specversion\"",
    "{\"specversion\":",
    "{\"specversion\":\"1.0",
};

START_TEST(test_scan_edges)
{
    const char *in = scan_edge_cases[_i];
    assert_parse_matches_jansson(in, strlen(in));
}
END_TEST

/* Every prefix of a valid event: the reader must never accept a cut-off one. */
START_TEST(test_scan_prefixes)
{
    const char *in = ok_cases[0].in;
    size_t len = strlen(in);
    for (size_t n = 0; n <= len; n++) {
        assert_parse_matches_jansson(in, n);
    }
}
END_TEST

Suite *tt_event_suite(void)
{
    Suite *s = suite_create("tt_event");
    TCase *tc = tcase_create("valid");
    tcase_add_loop_test(tc, test_valid_from_json, 0, NCASES(ok_cases));
    tcase_add_loop_test(tc, test_valid_parse, 0, NCASES(ok_cases));
    tcase_add_loop_test(tc, test_valid_idempotent, 0, NCASES(ok_cases));
    tcase_add_loop_test(tc, test_list_normalisation, 0, NCASES(list_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("token");
    tcase_add_loop_test(tc, test_token_wiped, 0, NCASES(wipe_cases));
    tcase_add_loop_test(tc, test_fingerprint, 0, NCASES(fp_cases));
    tcase_add_loop_test(tc, test_is_fingerprint, 0, NCASES(isfp_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("reject");
    tcase_add_loop_test(tc, test_mutation, 0, NCASES(mut_cases));
    tcase_add_test(tc, test_unknown_field_first);
    tcase_add_loop_test(tc, test_embedded_nul, 0, NCASES(nul_cases));
    tcase_add_test(tc, test_null_and_nonobject_input);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_loop_test(tc, test_path_redaction, 0, NCASES(path_cases));
    tcase_add_loop_test(tc, test_text_redaction, 0, NCASES(text_cases));
    tcase_add_test(tc, test_redaction_random);
    tcase_add_loop_test(tc, test_credentials_refused, 0, NCASES(refuse_cases));
    tcase_add_test(tc, test_identifiers_kept);
    tcase_add_loop_test(tc, test_raw, 0, NCASES(raw_cases));
    tcase_add_loop_test(tc, test_deep_nesting, 0, NCASES(depth_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_loop_test(tc, test_limit_exact, 0, NCASES(limit_cases));
    tcase_add_loop_test(tc, test_limit_over, 0, NCASES(limit_cases));
    tcase_add_loop_test(tc, test_list_count, 0, NCASES(count_cases));
    tcase_add_test(tc, test_extension_count);
    suite_add_tcase(s, tc);

    tc = tcase_create("scan");
    tcase_add_loop_test(tc, test_scan_ok_cases, 0, NCASES(ok_cases));
    tcase_add_loop_test(tc, test_scan_mutations, 0, NCASES(mut_cases));
    tcase_add_loop_test(tc, test_scan_limits, 0, NCASES(limit_cases));
    tcase_add_loop_test(tc, test_scan_counts, 0, NCASES(count_cases));
    tcase_add_loop_test(tc, test_scan_edges, 0, NCASES(scan_edge_cases));
    tcase_add_test(tc, test_scan_prefixes);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_loop_test(tc, test_type_names, 0, NCASES(type_names));
    tcase_add_test(tc, test_type_names_edge);
    tcase_add_loop_test(tc, test_reason_names, 0, TT_REJ__COUNT);
    suite_add_tcase(s, tc);
    return s;
}
