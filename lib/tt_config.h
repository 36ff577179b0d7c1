/* tt_config.h - table-driven configuration: YAML files and command-line
 * overrides. Each key has a type, default, bounds and help text; unknown keys,
 * duplicate keys and bad values are rejected with file:line (after Fluent
 * Bit's config map and Redis' static config table). */
#ifndef TT_CONFIG_H
#define TT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TT_CFG_STRING,    /* char *            */
    TT_CFG_INT,       /* int64_t, bounded  */
    TT_CFG_SIZE,      /* int64_t bytes: "8MiB", "512KiB", "1048576" */
    TT_CFG_DURATION,  /* int64_t ms: "5s", "250ms", "1h30m" */
    TT_CFG_BOOL,      /* int: true/false/yes/no/on/off */
    TT_CFG_STRLIST,   /* tt_strlist: YAML sequence or one string; flags append */
    TT_CFG_PASSMAP,   /* tt_strlist of "key=value": every key below this prefix
                         is accepted as-is (e.g. kafka.* for librdkafka) */
    TT_CFG_LOGLEVEL,  /* char *: error, warn, info or debug (tt_log_level_parse) */
    TT_CFG_FILELIST,  /* tt_strlist like STRLIST; each file must be readable when
                         the key is set, so a typo names the config line */
    TT_CFG_SHA256LIST, /* tt_strlist like STRLIST of "sha256:<64 hex digits>"
                          (keep last: it sizes the --help type names) */
} tt_cfg_type;

typedef struct tt_strlist {
    char **v;
    size_t n;
} tt_strlist;

typedef struct tt_cfg_entry {
    const char *key;     /* dotted path, e.g. "auth.tokens_file" */
    tt_cfg_type type;
    const char *def;     /* default as text, or NULL for none */
    int64_t min, max;    /* bounds for INT/SIZE/DURATION (after conversion);
                            for STRING, min 1 forbids the empty string */
    size_t offset;       /* where the value lives in the target struct */
    const char *help;
} tt_cfg_entry;

/* Owns a copy of s. Returns 0 or -1 (out of memory). */
int tt_strlist_add(tt_strlist *l, const char *s);
void tt_strlist_free(tt_strlist *l);

/* Parse a size such as "8MiB", "8M", "64k", "1048576". Returns 0 or -1. */
int tt_parse_size(const char *s, int64_t *out);

/* Apply every default of `table` (terminated by a NULL key) to obj. Returns 0
 * or -1 with err filled (a bad default is a programming error). */
int tt_config_defaults(const tt_cfg_entry *table, void *obj, char *err, size_t errlen);

/* Set one key from text. `where` prefixes errors ("file.yaml:12" or
 * "--listen"). Returns 0, or -1 with err = "<where>: <key>: <problem>". */
int tt_config_set(const tt_cfg_entry *table, void *obj, const char *key, const char *value,
                  const char *where, char *err, size_t errlen);

/* Load a YAML file of one mapping into obj. Nested mappings form dotted keys
 * ("auth:\n  tokens_file: x" sets auth.tokens_file). Unknown keys, a key given
 * twice (also once dotted and once nested), a second YAML document, a section
 * that is not a mapping, and bad values are errors naming file:line. Returns
 * 0, or -1 with err filled; obj may be partly set on failure (the caller frees
 * it with tt_config_free either way). */
int tt_config_load(const tt_cfg_entry *table, void *obj, const char *path, char *err,
                   size_t errlen);

/* Free every string/list the table points at in obj. */
void tt_config_free(const tt_cfg_entry *table, void *obj);

/* Settings given on the command line, applied after the config file. The
 * strings are borrowed (argv). */
#define TT_CFG_MAX_FLAGS 64

typedef struct tt_cfg_flags {
    struct {
        const char *key;
        const char *value;
        const char *flag; /* the long option, e.g. "max-body", or NULL */
    } v[TT_CFG_MAX_FLAGS];
    size_t n;
} tt_cfg_flags;

/* Remember key=value, given on the command line as the long option flag
 * (e.g. "max-body", kept by pointer; NULL: errors say "command line: key:
 * ..."). Errors about it then name the flag and the key: "--max-body
 * (max_body): ...". Returns 0, or -1 when TT_CFG_MAX_FLAGS are taken. */
int tt_cfg_flags_add(tt_cfg_flags *f, const char *key, const char *value, const char *flag);

/* Fill obj from the defaults, then the YAML file at path (when not NULL),
 * then the flags in order: flags override the file, and a list key given as
 * a flag replaces the file's list instead of adding to it. Returns 0, or -1
 * with err filled; obj may be partly set either way (free it with
 * tt_config_free). */
int tt_config_build(const tt_cfg_entry *table, void *obj, const char *path,
                    const tt_cfg_flags *flags, char *err, size_t errlen);

/* Print "  key  (type, default X)  help" lines for --help. */
void tt_config_print_help(const tt_cfg_entry *table, void *fp);

#endif
