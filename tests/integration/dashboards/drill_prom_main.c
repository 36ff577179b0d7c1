/* drill_prom_main.c - test helper: `drill_prom REPORT.json TEXTFILE.prom`
 * runs tt_drill_prom_write, for the t_dashboards_*.sh tests until
 * `tokentrail drill run --textfile` exists. Exit 0, or 1 with the error. */
#include <stdio.h>

#include "tt_drill_prom.h"

int main(int argc, char **argv)
{
    char err[1024];
    if (argc != 3) {
        fprintf(stderr, "usage: drill_prom REPORT.json TEXTFILE.prom\n");
        return 2;
    }
    if (tt_drill_prom_write(argv[1], argv[2], err, sizeof(err)) != 0) {
        fprintf(stderr, "drill_prom: %s\n", err);
        return 1;
    }
    return 0;
}
