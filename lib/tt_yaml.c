/* tt_yaml.c - libyaml helpers shared by the YAML loaders. */
#include "tt_yaml.h"

#include <stdio.h>

/* yaml_parser_load leaves nothing allocated when it fails. */
static int load_next(yaml_parser_t *parser, yaml_document_t *doc, const char *name, char *err,
                     size_t errlen)
{
    if (yaml_parser_load(parser, doc)) {
        return 0;
    }
    snprintf(err, errlen, "%s:%lu:%lu: YAML error: %s", name,
             (unsigned long)parser->problem_mark.line + 1,
             (unsigned long)parser->problem_mark.column + 1,
             parser->problem ? parser->problem : "unknown");
    return -1;
}

int tt_yaml_load_one(yaml_parser_t *parser, yaml_document_t *doc, const char *name, char *err,
                     size_t errlen)
{
    if (load_next(parser, doc, name, err, errlen) != 0) {
        return -1;
    }
    if (yaml_document_get_root_node(doc) == NULL) {
        return 0; /* the stream ended: an empty file */
    }
    /* At the end of the stream libyaml returns a document without a root. */
    yaml_document_t next;
    if (load_next(parser, &next, name, err, errlen) != 0) {
        yaml_document_delete(doc);
        return -1;
    }
    int more = yaml_document_get_root_node(&next) != NULL;
    if (more) {
        snprintf(err, errlen, "%s:%lu: more than one YAML document", name,
                 (unsigned long)next.start_mark.line + 1);
        yaml_document_delete(doc);
    }
    yaml_document_delete(&next);
    return more ? -1 : 0;
}
