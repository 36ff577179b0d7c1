#!/usr/bin/env bash
# t_config.sh - the YAML config file and the command line: keys take effect,
# flags override the file, unknown keys and bad values stop start-up with
# exit 2 and FILE:LINE; --help, --version and unknown commands.
set -u
. "$(dirname "$0")/lib.sh"

# run_fail ARGS...: a start-up that must fail; sets RC and ERR (stderr).
run_fail() {
    ERR=$(timeout 10 "$TT_BIN" "$@" 2>&1 >/dev/null)
    RC=$?
}

body_of_size() {   # body_of_size N FILE: one valid event padded to N bytes
    local ev
    ev=$(tt_ev_issued "sz-$1")
    { printf '%s' "$ev"; head -c $(($1 - ${#ev} - 1)) /dev/zero | tr '\0' ' '; printf '\n'; } >"$2"
}

# ---- the file sets listen, db, max_body, port_file, log_level
tt_newdir
cfg=$TT_DIR/collector.yaml
cat >"$cfg" <<YAML
# collector settings for the test
listen: "127.0.0.1:0"
db: $TT_DIR/from-config.db
max_body: 4KiB
port_file: $TT_DIR/port
log_level: warn
idle_timeout: 30s
YAML
tt_start_raw --config "$cfg" || exit 1
TT_DB=$TT_DIR/from-config.db
body_of_size 4096 "$TT_TMP/b4k"
body_of_size 5000 "$TT_TMP/b5k"
tt_post "$TT_TMP/b4k"
assert_eq "$STATUS" 200 "4096-byte body with max_body: 4KiB"
tt_post "$TT_TMP/b5k"
assert_eq "$STATUS" 413 "5000-byte body with max_body: 4KiB"
assert_json_eq "$BODY" '{"error":"body too large: the limit is 4096 bytes (max_body)"}' "413 body"
assert_eq "$(tt_events | jq -r .id)" "sz-4096" "events in the db named by the config"
# log_level: warn: the info start-up line is not written.
assert_eq "$(grep -c 'collecting on' "$TT_LOG")" 0 "info lines with log_level: warn"
tt_stop
assert_eq "$TT_RC" 0 "exit status"
assert_eq "$(ls "$TT_DIR" | grep -c '^tt.db')" 0 "no default-named db created"

# ---- a flag overrides the file
tt_start_raw --config "$cfg" --max-body 16KiB --log-level info || exit 1
TT_DB=$TT_DIR/from-config.db
tt_post "$TT_TMP/b5k"
assert_eq "$STATUS" 200 "5000-byte body with --max-body 16KiB over max_body: 4KiB"
body_of_size 20000 "$TT_TMP/b20k"
tt_post "$TT_TMP/b20k"
assert_eq "$STATUS" 413 "20000-byte body with --max-body 16KiB"
assert_json_eq "$BODY" '{"error":"body too large: the limit is 16384 bytes (max_body)"}' "413 body with the flag"
assert_eq "$(grep -c 'collecting on' "$TT_LOG")" 1 "info lines with --log-level info over log_level: warn"
tt_stop
assert_eq "$TT_RC" 0 "exit status"

# ---- errors in the file: exit 2 and FILE:LINE
bad=$TT_TMP/bad.yaml
printf 'listen: "127.0.0.1:0"\ndb: %s/x.db\nx: 1\n' "$TT_TMP" >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, unknown key"
assert_contains "$ERR" "$bad:3: unknown key 'x'" "unknown key message"

printf 'listen: "127.0.0.1:0"\ntls:\n  cert: a.pem\n  ciphers: all\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, unknown nested key"
assert_contains "$ERR" "$bad:4: unknown key 'tls.ciphers'" "unknown nested key message"

printf 'listen: "127.0.0.1:0"\n\nmax_body: lots\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, bad size"
assert_contains "$ERR" "$bad:3: max_body: not a size" "bad size message"

printf 'max_body: 10\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, size out of range"
assert_contains "$ERR" "$bad:1: max_body: out of range" "size out of range message"

printf 'idle_timeout: forever\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, bad duration"
assert_contains "$ERR" "$bad:1: idle_timeout: not a duration" "bad duration message"

printf 'max_connections: many\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, bad integer"
assert_contains "$ERR" "$bad:1: max_connections: not an integer" "bad integer message"

printf 'listen: [127.0.0.1\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, YAML syntax error"
assert_contains "$ERR" "$bad:" "YAML syntax error names the file"
assert_contains "$ERR" "YAML error" "YAML syntax error message"

printf -- '- a\n- b\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, top level not a mapping"
assert_contains "$ERR" "$bad:1: the top level must be a mapping" "top level message"

run_fail collect --config "$TT_TMP/no-such.yaml"
assert_eq "$RC" 2 "exit status, missing config file"
assert_contains "$ERR" "$TT_TMP/no-such.yaml: cannot open" "missing config message"

# ---- regression: duplicate keys, a second document and a section that is no
# mapping were accepted (the last value won) or called an unknown key
printf 'max_body: 1KiB\nmax_body: 16MiB\nlisten: 127.0.0.1:0\n' >"$bad"
run_fail collect --config "$bad" --db "$TT_TMP/dup.db"
assert_eq "$RC" 2 "exit status, duplicate key"
assert_contains "$ERR" "$bad:2: duplicate key 'max_body'" "duplicate key message"
assert_eq "$( [ -e "$TT_TMP/dup.db" ] && echo created)" "" "no database created on a config error"

printf 'listen: 127.0.0.1:0\nkafka:\n  topic: a\n  acks: all\n  topic: b\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, duplicate nested key"
assert_contains "$ERR" "$bad:5: duplicate key 'kafka.topic'" "duplicate nested key message"

echo tok-1 >"$TT_TMP/a.tokens"
printf 'auth:\n  tokens_file: %s\nlisten: 127.0.0.1:0\nauth:\n  token_sha256: x\n' "$TT_TMP/a.tokens" >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, section twice"
assert_contains "$ERR" "$bad:4: duplicate key 'auth'" "section twice message"

printf 'listen: 127.0.0.1:0\n---\nmax_body: 16MiB\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, two documents"
assert_contains "$ERR" "$bad:2: more than one YAML document" "two documents message"

printf 'listen: 127.0.0.1:0\nauth: x\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, auth: scalar"
assert_contains "$ERR" "$bad:2: 'auth' must be a mapping (keys like auth.tokens_file)" "auth: scalar message"
printf 'tls: 5\n' >"$bad"
run_fail collect --config "$bad"
assert_contains "$ERR" "$bad:1: 'tls' must be a mapping (keys like tls.cert)" "tls: scalar message"
printf 'kafka: [a]\n' >"$bad"
run_fail collect --config "$bad"
assert_contains "$ERR" "$bad:1: 'kafka' must be a mapping (keys like kafka.brokers)" "kafka: list message"

# the analyzer reads its file with the same loader
printf 'policy: p.yaml\nbatch: 10\nbatch: 20\n' >"$bad"
run_fail analyze --config "$bad"
assert_eq "$RC" 2 "exit status, analyze duplicate key"
assert_contains "$ERR" "$bad:3: duplicate key 'batch'" "analyze duplicate key message"
printf 'kafka:\n  group: a\n  group: b\n' >"$bad"
run_fail analyze --config "$bad"
assert_contains "$ERR" "$bad:3: duplicate key 'kafka.group'" "analyze duplicate nested key message"

# ---- regression: value errors found after loading named no file and line
printf 'listen: 127.0.0.1:0\nlog_level: 3\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, log_level: 3"
assert_contains "$ERR" "$bad:2: log_level: '3' is not error, warn, info or debug" "log_level message"
printf 'log_level: loud\n' >"$bad"
run_fail analyze --config "$bad"
assert_contains "$ERR" "$bad:1: log_level: 'loud' is not error, warn, info or debug" "analyze log_level message"

printf 'alertmanager: notaurl\n' >"$bad"
run_fail analyze --config "$bad" --once --db "$TT_TMP/none.db" --policy "$TT_ROOT/analyzers/policies/example.yaml"
assert_eq "$RC" 2 "exit status, alertmanager not a URL"
assert_contains "$ERR" "'notaurl' is not an http:// or https:// URL" "alertmanager message"
run_fail --bogus
assert_contains "$ERR" "tokentrail: unknown option '--bogus'" "unknown top-level option"

# --db that is no place for tokentrail's tables: refused, the file untouched
echo junk >"$TT_TMP/junk.db"
run_fail collect --listen 127.0.0.1:0 --db "$TT_TMP/junk.db"
assert_eq "$RC" 2 "exit status, --db not SQLite"
assert_contains "$ERR" "$TT_TMP/junk.db: not a SQLite database" "--db not SQLite message"
run_fail collect --listen 127.0.0.1:0 --db "$TT_TMP"
assert_contains "$ERR" "$TT_TMP: is a directory, not a database file" "--db directory message"
sqlite3 "$TT_TMP/app.db" "create table invoices(id integer primary key)"
run_fail collect --listen 127.0.0.1:0 --db "$TT_TMP/app.db"
assert_contains "$ERR" "app.db: a SQLite database of another application (1 table, none of tokentrail's)" \
    "--db foreign database message"
assert_eq "$(sqlite3 "$TT_TMP/app.db" "select group_concat(name) from sqlite_master where type='table'")" \
    invoices "foreign database left as it was"

printf 'listen: 127.0.0.1:0\ndb: ""\n' >"$bad"
run_fail collect --config "$bad"
assert_eq "$RC" 2 "exit status, db: empty"
assert_contains "$ERR" "$bad:2: db: must not be empty" "db: empty message"
run_fail collect --listen 127.0.0.1:0 --db ""
assert_contains "$ERR" "--db (db): must not be empty" "--db '' message"

printf 'listen: 127.0.0.1:0\nauth:\n  token_sha256:\n    - sha256:abc\n' >"$bad"
run_fail collect --config "$bad" --db "$TT_TMP/y.db"
assert_eq "$RC" 2 "exit status, bad token_sha256"
assert_contains "$ERR" "$bad:4: auth.token_sha256: not a fingerprint sha256:<64 lowercase hex digits>" \
    "bad token_sha256 message"

printf 'listen: 127.0.0.1:0\nauth:\n  tokens_file: %s/no-such.tokens\n' "$TT_TMP" >"$bad"
run_fail collect --config "$bad" --db "$TT_TMP/y.db"
assert_eq "$RC" 2 "exit status, missing tokens_file"
assert_contains "$ERR" "$bad:3: auth.tokens_file: cannot read $TT_TMP/no-such.tokens: No such file" \
    "missing tokens_file message"

# ---- errors on the command line
run_fail collect --listen 127.0.0.1:0 --db "$TT_TMP/y.db" --max-body lots
assert_eq "$RC" 2 "exit status, --max-body lots"
assert_contains "$ERR" "--max-body (max_body): not a size" "--max-body lots message"
run_fail collect --listen 127.0.0.1:0 --db "$TT_TMP/y.db" --log-level chatty
assert_eq "$RC" 2 "exit status, --log-level chatty"
assert_contains "$ERR" "--log-level (log_level): 'chatty' is not error, warn, info or debug" "--log-level chatty message"
run_fail analyze --once --db "$TT_TMP/none.db" --lateness soon
assert_eq "$RC" 2 "exit status, --lateness soon"
assert_contains "$ERR" "--lateness (lateness): not a duration" "analyze flag error names the flag"
run_fail collect --no-such-flag
assert_eq "$RC" 2 "exit status, unknown collect flag"
assert_contains "$ERR" "tokentrail collect --help" "unknown collect flag message"
run_fail collect --listen 127.0.0.1:0 --db "$TT_TMP/y.db" stray
assert_eq "$RC" 2 "exit status, stray argument"
assert_contains "$ERR" "unexpected argument 'stray'" "stray argument message"
run_fail collect --listen nonsense --db "$TT_TMP/y.db"
assert_eq "$RC" 2 "exit status, --listen without a port"
assert_contains "$ERR" "is not HOST:PORT" "--listen nonsense message"
run_fail collect --listen 127.0.0.1:0 --db "$TT_TMP/y.db" --tls-cert "$TT_TMP/only-cert.pem"
assert_eq "$RC" 2 "exit status, --tls-cert without --tls-key"
assert_contains "$ERR" "tls: set both" "--tls-cert alone message"

# ---- help, version, commands
for cmd in "--help" "-h" "help" "collect --help" "events --help"; do
    out=$("$TT_BIN" $cmd 2>"$TT_TMP/err")
    rc=$?
    assert_eq "$rc" 0 "exit status of 'tokentrail $cmd'"
    assert_contains "$out" "Usage: tokentrail" "stdout of 'tokentrail $cmd'"
    assert_eq "$(cat "$TT_TMP/err")" "" "stderr of 'tokentrail $cmd'"
done
out=$("$TT_BIN" --version)
assert_eq "$?" 0 "exit status of --version"
assert_eq "$out" "tokentrail $(cat "$TT_ROOT/VERSION")" "--version output"
pass
[[ $out =~ ^tokentrail\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version: '$out' is not 'tokentrail X.Y.Z'"
assert_eq "$("$TT_BIN" -V)" "$out" "-V output"

run_fail frobnicate
assert_eq "$RC" 2 "exit status of an unknown command"
assert_contains "$ERR" "unknown command 'frobnicate'" "unknown command message"
run_fail
assert_eq "$RC" 2 "exit status without a command"
assert_contains "$ERR" "Usage: tokentrail" "usage without a command"
tt_done
