/* main.c - the tokentrail command: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "analyzer.h"
#include "collector.h"
#include "drill.h"
#include "tt_evidence.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"collect", tt_cmd_collect, "receive events over HTTP and store them durably"},
    {"events", tt_cmd_events, "print stored events (table or NDJSON)"},
    {"analyze", tt_cmd_analyze, "find lingering tokens and scope drift in the event trail"},
    {"findings", tt_cmd_findings, "print the findings 'analyze' stored"},
    {"evidence", tt_cmd_evidence, "export and verify signed evidence bundles"},
    {"drill", tt_cmd_drill, "run fire drills against a real OAuth server and resource servers"},
    {NULL, NULL, NULL},
};

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: tokentrail COMMAND [OPTIONS]\n"
                "\n"
                "Proof that just-in-time OAuth access is short and narrow.\n"
                "\n"
                "Commands:\n");
    for (const command *c = commands; c->name; c++) {
        fprintf(fp, "  %-10s %s\n", c->name, c->summary);
    }
    fprintf(fp, "\n"
                "Run 'tokentrail COMMAND --help' for a command's options.\n"
                "  -h, --help     show this help\n"
                "  -V, --version  print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("tokentrail %s\n", TT_VERSION);
        return 0;
    }
    for (const command *c = commands; c->name; c++) {
        if (strcmp(cmd, c->name) == 0) {
            return c->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "tokentrail: unknown %s '%s'\n\n", cmd[0] == '-' ? "option" : "command", cmd);
    usage(stderr);
    return 2;
}
