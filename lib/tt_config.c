/* tt_config.c - table-driven configuration from YAML (libyaml) and flags. */
#include "tt_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "tt_event.h"
#include "tt_log.h"
#include "tt_time.h"
#include "tt_yaml.h"

#define CFG_MAX_KEY 256
#define CFG_MAX_VALUE 4096
#define CFG_MAX_DEPTH 8
#define CFG_MAX_KEYS 4096 /* keys and sections in one file */

int tt_strlist_add(tt_strlist *l, const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL) {
        return -1;
    }
    char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (v == NULL) {
        free(copy);
        return -1;
    }
    v[l->n++] = copy;
    l->v = v;
    return 0;
}

void tt_strlist_free(tt_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int tt_parse_size(const char *s, int64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)*s)) {
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0) {
        return -1;
    }
    static const struct {
        const char *suffix;
        unsigned long long mult;
    } units[] = {{"", 1},          {"b", 1},        {"k", 1024},         {"kb", 1000},
                 {"kib", 1024},    {"m", 1 << 20},  {"mb", 1000000},     {"mib", 1 << 20},
                 {"g", 1ULL << 30}, {"gb", 1000000000ULL}, {"gib", 1ULL << 30}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > (unsigned long long)INT64_MAX / units[i].mult) {
                return -1;
            }
            *out = (int64_t)(v * units[i].mult);
            return 0;
        }
    }
    return -1;
}

static const tt_cfg_entry *cfg_find(const tt_cfg_entry *table, const char *key, const char **sub)
{
    *sub = NULL;
    for (const tt_cfg_entry *e = table; e->key; e++) {
        size_t kl = strlen(e->key);
        if (e->type == TT_CFG_PASSMAP) {
            if (strncmp(key, e->key, kl) == 0 && key[kl] == '.' && key[kl + 1] != '\0') {
                *sub = key + kl + 1;
                return e;
            }
        } else if (strcmp(key, e->key) == 0) {
            return e;
        }
    }
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_int(const char *v, int64_t *out)
{
    if (*v == '\0') {
        return -1;
    }
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = x;
    return 0;
}

static int is_list(const tt_cfg_entry *e)
{
    return e->type == TT_CFG_STRLIST || e->type == TT_CFG_FILELIST ||
           e->type == TT_CFG_SHA256LIST;
}

/* err = "<where>: <key>: <problem>", or "--flag (<key>): <problem>" when where
 * is a command-line flag; returns -1. */
static int set_fail(char *err, size_t errlen, const char *where, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int set_fail(char *err, size_t errlen, const char *where, const char *key,
                    const char *fmt, ...)
{
    char what[CFG_MAX_VALUE + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (where[0] == '-') {
        snprintf(err, errlen, "%s (%s): %s", where, key, what);
    } else {
        snprintf(err, errlen, "%s: %s: %s", where, key, what);
    }
    return -1;
}

static int set_string(char **field, const char *value, const char *where, const char *key,
                      char *err, size_t errlen)
{
    char *copy = strdup(value);
    if (copy == NULL) {
        return set_fail(err, errlen, where, key, "out of memory");
    }
    free(*field);
    *field = copy;
    return 0;
}

static int set_entry(const tt_cfg_entry *e, void *obj, const char *sub, const char *value,
                     const char *where, char *err, size_t errlen)
{
    char *field = (char *)obj + e->offset;
    int64_t n = 0;

    switch (e->type) {
    case TT_CFG_STRING:
        if (e->min > 0 && *value == '\0') {
            return set_fail(err, errlen, where, e->key, "must not be empty");
        }
        return set_string((char **)field, value, where, e->key, err, errlen);
    case TT_CFG_LOGLEVEL: {
        tt_log_level lvl;
        if (tt_log_level_parse(value, &lvl) != 0) {
            return set_fail(err, errlen, where, e->key, "'%.64s' is not error, warn, info or debug",
                            value);
        }
        return set_string((char **)field, value, where, e->key, err, errlen);
    }
    case TT_CFG_FILELIST: {
        /* Opened again by the user of the list; this early look only lets a
         * missing file be reported with the line that names it. */
        FILE *fp = fopen(value, "r");
        if (fp == NULL) {
            return set_fail(err, errlen, where, e->key, "cannot read %s: %s", value,
                            strerror(errno));
        }
        fclose(fp);
        break;
    }
    case TT_CFG_SHA256LIST:
        /* The value is not echoed: a raw token put here by mistake is a
         * secret. */
        if (!tt_is_fingerprint(value)) {
            return set_fail(err, errlen, where, e->key,
                            "not a fingerprint sha256:<64 lowercase hex digits>");
        }
        break;
    case TT_CFG_STRLIST:
        break;
    case TT_CFG_PASSMAP: {
        char kv[CFG_MAX_KEY + CFG_MAX_VALUE + 2];
        snprintf(kv, sizeof(kv), "%s=%s", sub, value);
        if (tt_strlist_add((tt_strlist *)field, kv) != 0) {
            return set_fail(err, errlen, where, e->key, "out of memory");
        }
        return 0;
    }
    case TT_CFG_BOOL: {
        int b;
        if (parse_bool(value, &b) != 0) {
            return set_fail(err, errlen, where, e->key, "not a boolean (true/false)");
        }
        *(int *)field = b;
        return 0;
    }
    case TT_CFG_INT:
        if (parse_int(value, &n) != 0) {
            return set_fail(err, errlen, where, e->key, "not an integer");
        }
        break;
    case TT_CFG_SIZE:
        if (tt_parse_size(value, &n) != 0) {
            return set_fail(err, errlen, where, e->key, "not a size (e.g. 8MiB, 512KiB, 1048576)");
        }
        break;
    case TT_CFG_DURATION:
        if (tt_time_parse_duration(value, &n) != 0) {
            return set_fail(err, errlen, where, e->key,
                            "not a duration (e.g. 250ms, 5s, 15m, 1h)");
        }
        break;
    }
    if (is_list(e)) {
        if (tt_strlist_add((tt_strlist *)field, value) != 0) {
            return set_fail(err, errlen, where, e->key, "out of memory");
        }
        return 0;
    }
    /* INT, SIZE and DURATION: n is parsed. */
    if (n < e->min || n > e->max) {
        return set_fail(err, errlen, where, e->key, "out of range (%lld..%lld%s)",
                        (long long)e->min, (long long)e->max,
                        e->type == TT_CFG_SIZE       ? " bytes"
                        : e->type == TT_CFG_DURATION ? " ms"
                                                     : "");
    }
    *(int64_t *)field = n;
    return 0;
}

int tt_config_set(const tt_cfg_entry *table, void *obj, const char *key, const char *value,
                  const char *where, char *err, size_t errlen)
{
    const char *sub;
    const tt_cfg_entry *e = cfg_find(table, key, &sub);
    if (e == NULL) {
        snprintf(err, errlen, "%s: unknown key '%.*s'", where, CFG_MAX_KEY, key);
        return -1;
    }
    if (strlen(value) > CFG_MAX_VALUE) {
        return set_fail(err, errlen, where, key, "longer than %d bytes", CFG_MAX_VALUE);
    }
    return set_entry(e, obj, sub, value, where, err, errlen);
}

int tt_config_defaults(const tt_cfg_entry *table, void *obj, char *err, size_t errlen)
{
    for (const tt_cfg_entry *e = table; e->key; e++) {
        if (e->def != NULL && set_entry(e, obj, NULL, e->def, "default", err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

void tt_config_free(const tt_cfg_entry *table, void *obj)
{
    for (const tt_cfg_entry *e = table; e->key; e++) {
        char *field = (char *)obj + e->offset;
        if (e->type == TT_CFG_STRING || e->type == TT_CFG_LOGLEVEL) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (is_list(e) || e->type == TT_CFG_PASSMAP) {
            tt_strlist_free((tt_strlist *)field);
        }
    }
}

/* The entry that makes `key` a section: one that lives below it ("auth" for
 * auth.tokens_file), or the PASSMAP that key is or lies below ("kafka",
 * "kafka.sasl"). NULL when key is no section. */
static const tt_cfg_entry *cfg_section(const tt_cfg_entry *table, const char *key)
{
    size_t kl = strlen(key);
    for (const tt_cfg_entry *e = table; e->key; e++) {
        size_t el = strlen(e->key);
        if (strncmp(e->key, key, kl) == 0 && e->key[kl] == '.') {
            return e;
        }
        if (e->type == TT_CFG_PASSMAP && strncmp(key, e->key, el) == 0 &&
            (key[el] == '.' || key[el] == '\0')) {
            return e;
        }
    }
    return NULL;
}

/* Walking state for one file. */
typedef struct cfg_walk {
    const tt_cfg_entry *table;
    void *obj;
    const char *path;
    yaml_document_t *doc;
    /* Every dotted key met so far, sections included: libyaml accepts a
     * repeated key and the last value would silently win. Dotted keys catch
     * "a.b: 1" plus "a: {b: 2}" too. Owned; freed by tt_config_load. */
    char **seen;
    size_t n_seen;
    char *err;
    size_t errlen;
} cfg_walk;

static int walk_mapping(cfg_walk *w, yaml_node_t *map, const char *prefix, int depth);

/* Remember key; -1 with w->err set if it was met before. */
static int walk_remember(cfg_walk *w, const char *key, unsigned long line)
{
    for (size_t i = 0; i < w->n_seen; i++) {
        if (strcmp(w->seen[i], key) == 0) {
            snprintf(w->err, w->errlen, "%s:%lu: duplicate key '%s'", w->path, line, key);
            return -1;
        }
    }
    if (w->n_seen == CFG_MAX_KEYS) {
        snprintf(w->err, w->errlen, "%s:%lu: more than %d keys", w->path, line, CFG_MAX_KEYS);
        return -1;
    }
    char *copy = strdup(key);
    char **seen = copy ? realloc(w->seen, (w->n_seen + 1) * sizeof(*seen)) : NULL;
    if (seen == NULL) {
        free(copy);
        snprintf(w->err, w->errlen, "%s: out of memory", w->path);
        return -1;
    }
    seen[w->n_seen++] = copy;
    w->seen = seen;
    return 0;
}

static int walk_value(cfg_walk *w, const char *key, yaml_node_t *val, unsigned long line, int depth)
{
    char where[512];
    snprintf(where, sizeof(where), "%s:%lu", w->path, line);
    const char *sub;
    const tt_cfg_entry *e = cfg_find(w->table, key, &sub);

    if (val->type == YAML_MAPPING_NODE) {
        /* A mapping is a section; it is only valid if some key lives below it. */
        if (e != NULL && e->type != TT_CFG_PASSMAP) {
            snprintf(w->err, w->errlen, "%s: %s: expected %s, not a mapping", where, key,
                     is_list(e) ? "a value or a list" : "a single value");
            return -1;
        }
        if (e == NULL && cfg_section(w->table, key) == NULL) {
            snprintf(w->err, w->errlen, "%s: unknown key '%s'", where, key);
            return -1;
        }
        return walk_mapping(w, val, key, depth + 1);
    }
    if (e == NULL) {
        const tt_cfg_entry *s = cfg_section(w->table, key);
        if (s != NULL) {
            /* "kafka.*" when only a pass-through map lives below key. */
            int any = s->type == TT_CFG_PASSMAP && strcmp(s->key, key) == 0;
            snprintf(w->err, w->errlen, "%s: '%s' must be a mapping (keys like %s%s)", where, key,
                     s->key, any ? ".*" : "");
        } else {
            snprintf(w->err, w->errlen, "%s: unknown key '%s'", where, key);
        }
        return -1;
    }
    if (val->type == YAML_SEQUENCE_NODE) {
        if (!is_list(e)) {
            snprintf(w->err, w->errlen, "%s: %s: expected a single value, not a list", where, key);
            return -1;
        }
        for (yaml_node_item_t *it = val->data.sequence.items.start;
             it < val->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(w->doc, *it);
            if (item == NULL || item->type != YAML_SCALAR_NODE) {
                snprintf(w->err, w->errlen, "%s: %s: list items must be plain values", where, key);
                return -1;
            }
            snprintf(where, sizeof(where), "%s:%lu", w->path,
                     (unsigned long)item->start_mark.line + 1);
            if (tt_config_set(w->table, w->obj, key, (const char *)item->data.scalar.value, where,
                              w->err, w->errlen) != 0) {
                return -1;
            }
        }
        return 0;
    }
    return tt_config_set(w->table, w->obj, key, (const char *)val->data.scalar.value, where,
                         w->err, w->errlen);
}

static int walk_mapping(cfg_walk *w, yaml_node_t *map, const char *prefix, int depth)
{
    if (depth > CFG_MAX_DEPTH) {
        snprintf(w->err, w->errlen, "%s:%lu: nested too deeply", w->path,
                 (unsigned long)map->start_mark.line + 1);
        return -1;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        if (k == NULL || v == NULL) {
            continue;
        }
        unsigned long line = (unsigned long)k->start_mark.line + 1;
        if (k->type != YAML_SCALAR_NODE) {
            snprintf(w->err, w->errlen, "%s:%lu: keys must be plain words", w->path, line);
            return -1;
        }
        char key[CFG_MAX_KEY];
        int n = snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
                         (const char *)k->data.scalar.value);
        if (n < 0 || (size_t)n >= sizeof(key)) {
            snprintf(w->err, w->errlen, "%s:%lu: key too long", w->path, line);
            return -1;
        }
        if (walk_remember(w, key, line) != 0 || walk_value(w, key, v, line, depth) != 0) {
            return -1;
        }
    }
    return 0;
}

int tt_config_load(const tt_cfg_entry *table, void *obj, const char *path, char *err,
                   size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(fp);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    yaml_parser_set_input_file(&parser, fp);
    yaml_document_t doc;
    if (tt_yaml_load_one(&parser, &doc, path, err, errlen) != 0) {
        yaml_parser_delete(&parser);
        fclose(fp);
        return -1;
    }
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        rc = 0; /* an empty file sets nothing */
    } else if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s:%lu: the top level must be a mapping of keys", path,
                 (unsigned long)root->start_mark.line + 1);
    } else {
        cfg_walk w = {table, obj, path, &doc, NULL, 0, err, errlen};
        rc = walk_mapping(&w, root, "", 0);
        for (size_t i = 0; i < w.n_seen; i++) {
            free(w.seen[i]);
        }
        free(w.seen);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(fp);
    return rc;
}

int tt_cfg_flags_add(tt_cfg_flags *f, const char *key, const char *value, const char *flag)
{
    if (f->n == TT_CFG_MAX_FLAGS) {
        return -1;
    }
    f->v[f->n].key = key;
    f->v[f->n].value = value;
    f->v[f->n].flag = flag;
    f->n++;
    return 0;
}

int tt_config_build(const tt_cfg_entry *table, void *obj, const char *path,
                    const tt_cfg_flags *flags, char *err, size_t errlen)
{
    if (tt_config_defaults(table, obj, err, errlen) != 0 ||
        (path && tt_config_load(table, obj, path, err, errlen) != 0)) {
        return -1;
    }
    for (size_t i = 0; flags && i < flags->n; i++) {
        const char *sub;
        const tt_cfg_entry *e = cfg_find(table, flags->v[i].key, &sub);
        if (e && is_list(e)) {
            /* The first flag for a list replaces what the file said. */
            int first = 1;
            for (size_t j = 0; j < i; j++) {
                first &= strcmp(flags->v[j].key, flags->v[i].key) != 0;
            }
            if (first) {
                tt_strlist_free((tt_strlist *)((char *)obj + e->offset));
            }
        }
        char where[64];
        if (flags->v[i].flag) {
            snprintf(where, sizeof(where), "--%s", flags->v[i].flag);
        } else {
            snprintf(where, sizeof(where), "command line");
        }
        if (tt_config_set(table, obj, flags->v[i].key, flags->v[i].value, where, err, errlen) !=
            0) {
            return -1;
        }
    }
    return 0;
}

void tt_config_print_help(const tt_cfg_entry *table, void *fp)
{
    static const char *const tnames[] = {"string", "integer", "size",  "duration", "bool",
                                         "list",   "map",     "level", "list",     "list"};
    _Static_assert(sizeof(tnames) / sizeof(tnames[0]) == TT_CFG_SHA256LIST + 1,
                   "a name for every tt_cfg_type");
    for (const tt_cfg_entry *e = table; e->key; e++) {
        fprintf((FILE *)fp, "  %-26s %-8s %s%s%s%s\n", e->type == TT_CFG_PASSMAP ? "kafka.*" : e->key,
                tnames[e->type], e->help, e->def ? " (default " : "", e->def ? e->def : "",
                e->def ? ")" : "");
    }
}
