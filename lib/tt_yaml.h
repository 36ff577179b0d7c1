/* tt_yaml.h - libyaml helpers shared by the YAML loaders (scenario, policy):
 * a file holds exactly one document, and errors name file:line. */
#ifndef TT_YAML_H
#define TT_YAML_H

#include <stddef.h>

#include <yaml.h>

/* Load the only document of parser's input (a file or a string the caller
 * set) into doc. libyaml would hand out the documents one at a time, so a
 * loader reading one would silently ignore a second after `---`; here a
 * second document is an error. An empty stream is not: doc is then loaded
 * without a root node (yaml_document_get_root_node returns NULL) and the
 * caller decides. Returns 0 with doc loaded (the caller deletes it with
 * yaml_document_delete), or -1 with nothing left to delete and err =
 * "NAME:LINE:COL: YAML error: <problem>" or
 * "NAME:LINE: more than one YAML document" (LINE is the second document's). */
int tt_yaml_load_one(yaml_parser_t *parser, yaml_document_t *doc, const char *name, char *err,
                     size_t errlen);

#endif
