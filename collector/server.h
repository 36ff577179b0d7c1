/* server.h - the collector's HTTP server (libmicrohttpd, thread per connection). */
#ifndef TT_SERVER_H
#define TT_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "collector.h"
#include "tt_kafka.h"
#include "tt_store.h"

typedef struct tt_server tt_server;

/* Start serving `store` as configured; `kafka` (NULL in embedded mode) feeds
 * /readyz and /metrics and refuses ingest while the outbox is full or the
 * producer failed. Both are borrowed and must outlive the server. Ingest
 * tokens are read and hashed here; their raw bytes are wiped. Returns NULL
 * with err filled on failure. */
tt_server *tt_server_start(const tt_collect_config *cfg, tt_store *store, tt_kafka *kafka,
                           char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
uint16_t tt_server_port(const tt_server *srv);

/* Stop accepting connections; requests in flight continue. */
void tt_server_quiesce(tt_server *srv);

/* Wait until no request is in flight or timeout_ms passed. Returns the number
 * still in flight. */
int tt_server_drain(tt_server *srv, int64_t timeout_ms);

/* Stop and free. Accepts NULL. */
void tt_server_stop(tt_server *srv);

#endif
