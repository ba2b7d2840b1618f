#!/usr/bin/env bash
# Benchmark Vigie against nginx (same TLS certificate, same upstream) and against the upstream
# itself ("direct", plain HTTP), all on 127.0.0.1, in one run:
#   small    ~300-byte JSON, CONNS keep-alive connections: wrk (HTTP/1.1) and h2load (HTTP/2)
#   download 20 clients each fetch a 200 MiB random file (h2load, HTTP/1.1 then HTTP/2),
#            with the proxy's peak RSS (VmRSS sampled at 10 Hz) and CPU seconds
#   handshake new TLS connections/s, each a full handshake + one small GET (bench/hsload.c)
# Vigie runs with sign-in on: the script signs in once (bench/signin.py) and every request to
# every target carries that session cookie, so Vigie checks a session on each request.
# Then Vigie once more with its access log on. Prints ratios and PASS/FAIL per target, appends
# the raw numbers to results/bench/results.jsonl and the table to results/bench/<run>.txt.
# Exit status: 0 ok, 1 some measurement had >1 % failed requests, a sha256 mismatch or a crash,
# 2 missing tool / setup error. Missed performance targets do not change the exit status.
#
# Env: DURATION (10 s per timed test)  CONNS (50)  THREADS (2)  HS_CONNS (CONNS)
#      BIG_CLIENTS (20)  BIG_MIB (200)  WARMUP (2 s)  UP_WORKERS (1, upstream nginx workers)
#      ACCESS_LOG_RUN (1: also measure Vigie with log.access_log: true)
#      NGINX (nginx binary)  VIGIE (vigie binary)  KEEP_TMP (1: keep the temp dir)
#      BUILD (auto: cargo build --release when the binary is missing or older than src/,
#             Cargo.toml or Cargo.lock; 1: always; 0: never)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-50}"
THREADS="${THREADS:-2}"
HS_CONNS="${HS_CONNS:-$CONNS}"
BIG_CLIENTS="${BIG_CLIENTS:-20}"
BIG_MIB="${BIG_MIB:-200}"
WARMUP="${WARMUP:-2}"
UP_WORKERS="${UP_WORKERS:-1}"
ACCESS_LOG_RUN="${ACCESS_LOG_RUN:-1}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
VIGIE="${VIGIE:-$ROOT/target/release/vigie}"
RESULTS="$ROOT/results/bench"
DATA="$RESULTS/data"
RUN_ID="bench-$(date +%Y%m%d-%H%M%S)"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ---- preflight --------------------------------------------------------------------------------
[[ "$DURATION" =~ ^[0-9]+$ && "$CONNS" =~ ^[0-9]+$ && "$HS_CONNS" =~ ^[0-9]+$ ]] \
  || die "DURATION, CONNS and HS_CONNS must be integers"
(( DURATION >= 1 && DURATION <= 120 && CONNS >= 1 && CONNS <= 1000 && HS_CONNS <= 1000 )) \
  || die "refusing: DURATION must be 1..120 s, CONNS and HS_CONNS 1..1000"
missing=()
for t in wrk h2load curl python3 cc sha256sum timeout awk; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
[[ -x "$NGINX" ]] || missing+=("nginx ($NGINX)")
[[ -r /usr/include/openssl/ssl.h ]] || missing+=("OpenSSL headers (libssl-dev)")
if (( ${#missing[@]} )); then
  die "missing tools: ${missing[*]}. On Debian: apt-get install nginx wrk nghttp2-client curl gcc libssl-dev"
fi
BUILD="${BUILD:-auto}"
build=0
if [[ ! -x "$VIGIE" || "$BUILD" == 1 ]]; then
  build=1
elif [[ "$BUILD" == auto && "$VIGIE" == "$ROOT/target/release/vigie" ]] \
  && [[ -n "$(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$VIGIE" -print -quit)" ]]; then
  build=1   # a benchmark of stale code would be misleading
fi
if (( build )); then
  command -v cargo >/dev/null || die "cargo is needed to build $VIGIE"
  log "building the release binary (cargo build --release)"
  if ! (cd "$ROOT" && cargo build --release); then
    [[ -x "$VIGIE" ]] || die "cargo build --release failed"
    log "WARNING: cargo build --release failed; measuring the existing, older binary"
  fi
fi

RUN="$(mktemp -d /tmp/vigie-bench.XXXXXX)"
chmod 755 "$RUN"   # nginx workers (user nobody when run as root) must reach the files they use
PIDS=()            # everything started here, stopped in reverse order on exit
SAMPLER=""         # the RSS sampler of the running measurement
STATUS=0           # becomes 1 on failed requests, sha256 mismatch or a crashed server

stop_pid() { # pid: TERM, up to 5 s grace, then KILL (nginx masters stop their workers)
  local p=$1 i
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local i
  if [[ -n "$SAMPLER" ]]; then kill "$SAMPLER" 2>/dev/null || true; fi
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do stop_pid "${PIDS[i]}"; done
  # nginx workers whose master was killed would linger: they are recorded in PIDS too.
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then log "kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- free ports, chosen by the kernel (never the fixed dev ports) ---------------------------
read -r UP_PORT UP_H2C_PORT NGINX_PORT VIGIE_PORT ADMIN_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)

render() { # template output key=value...: replaces @key@ everywhere
  local tpl=$1 out=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$tpl" >"$out"
  if grep -q '@[A-Z_]*@' "$out"; then die "unfilled placeholder in $out"; fi
}

wait_200() { # url [curl args]: wait up to 15 s for a 200
  local url=$1 i code
  shift
  for i in $(seq 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)
    [[ "$code" == 200 ]] && return 0
    sleep 0.1
  done
  die "$url did not answer 200 within 15 s (last: $code)"
}

children() { # pid: the pid and its direct children (nginx master + workers)
  echo "$1"
  { tr ' ' '\n' <"/proc/$1/task/$1/children"; } 2>/dev/null | grep . || true
}

start_nginx() { # name conf -> sets NGINX_PID (the master, recorded in PIDS)
  local name=$1 conf=$2
  "$NGINX" -t -q -e "$RUN/$name-startup.log" -c "$conf" || die "nginx -t failed for $conf"
  "$NGINX" -e "$RUN/$name-startup.log" -c "$conf" -g 'daemon off;' >"$RUN/$name.out" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
}

BENCH_PASSWORD="Bench-Radio-2026"
BENCH_TOTP="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
start_vigie() { # access_log level -> VIGIE_PID, VIGIE_COOKIE; logs to $RUN/vigie-<access_log>.log
  local access=$1 level=$2
  # A fresh state directory each start: a second sign-in with the same TOTP code would be a replay.
  render "$BENCH/vigie.yaml.in" "$RUN/vigie-$access.yaml" \
    "VIGIE_PORT=$VIGIE_PORT" "ADMIN_PORT=$ADMIN_PORT" "UP_PORT=$UP_PORT" \
    "CERT=$RUN/certs/server.crt" "KEY=$RUN/certs/server.key" \
    "ACCESS_LOG=$access" "LOG_LEVEL=$level" "STATE=$RUN/state-$access" \
    "HASH=$BENCH_HASH" "TOTP=$BENCH_TOTP"
  "$VIGIE" serve --config "$RUN/vigie-$access.yaml" >"$RUN/vigie-$access.log" 2>&1 &
  VIGIE_PID=$!
  PIDS+=("$VIGIE_PID")
  local i
  for i in $(seq 150); do
    curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" && break
    kill -0 "$VIGIE_PID" 2>/dev/null || { cat "$RUN/vigie-$access.log" >&2; die "vigie exited"; }
    sleep 0.1
  done
  VIGIE_COOKIE=$(python3 "$BENCH/signin.py" localhost "$VIGIE_PORT" bench "$BENCH_PASSWORD" "$BENCH_TOTP") \
    || die "cannot sign in to vigie"
  wait_200 "https://localhost:$VIGIE_PORT/small.json" --cacert "$RUN/certs/ca.crt" -H "Cookie: $VIGIE_COOKIE"
}

# ---- server-side sampling: RSS (VmRSS sum over master + workers) and CPU ticks --------------
proc_sum() { # field pids...: sum of a /proc/PID/status field in kB
  local field=$1 p k v _ t=0
  shift
  for p in "$@"; do
    while read -r k v _; do
      if [[ "$k" == "$field:" ]]; then t=$((t + v)); break; fi
    done 2>/dev/null <"/proc/$p/status" || true
  done
  echo "$t"
}
cpu_ticks() { # pids...: utime + stime (fields 14 and 15 of /proc/PID/stat)
  local p t=0 s f
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -ra f <<<"${s##*) }"   # fields from 3 on ("pid (comm) " dropped; comm may hold spaces)
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

# measure test target tool pid cmd...: runs one load test while sampling the server tree,
# then hands the output to report.py (which appends a JSON row). pid "" = no sampling.
measure() {
  local test=$1 target=$2 tool=$3 pid=$4 out base=0 c0=0 rc=0 p pids=() extra=()
  shift 4
  out="$RUN/out-$test-$target.txt"
  if [[ -n "$pid" ]]; then
    mapfile -t pids < <(children "$pid")
    for p in "${pids[@]}"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done  # reset VmHWM
    base=$(proc_sum VmRSS "${pids[@]}")
    c0=$(cpu_ticks "${pids[@]}")
    echo "$base" >"$RUN/peak"
    ( peak=$base
      while :; do
        r=$(proc_sum VmRSS "${pids[@]}")
        if (( r > peak )); then peak=$r; echo "$peak" >"$RUN/peak"; fi
        sleep 0.1
      done ) &
    SAMPLER=$!
  fi
  timeout $(( DURATION * 3 + 120 )) "$@" >"$out" 2>&1 || rc=$?
  if [[ -n "$SAMPLER" ]]; then
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    extra=("rss_base_kb=$base" "rss_peak_kb=$(cat "$RUN/peak")" "hz=$HZ"
           "hwm_kb=$(proc_sum VmHWM "${pids[@]}")" "cpu_ticks=$(( $(cpu_ticks "${pids[@]}") - c0 ))")
    kill -0 "$pid" 2>/dev/null || { log "ERROR: $target (pid $pid) died during $test"; STATUS=1; }
  fi
  if (( rc != 0 )); then cat "$out" >&2; die "$tool failed (exit $rc) in $test/$target"; fi
  cp "$out" "$RESULTS/$RUN_ID/" 2>/dev/null || true
  python3 "$BENCH/report.py" record "$RUN/rows.jsonl" "$tool" "$out" \
    "run=$RUN_ID" "ts=$(date -Is)" "test=$test" "target=$target" "conns=${CONNS_USED:-$CONNS}" \
    "${extra[@]}" "${REPORT_EXTRA[@]}" || rc=$?
  if (( rc == 3 )); then STATUS=1; elif (( rc != 0 )); then die "cannot parse $out"; fi
  sleep 1   # let the CPUs settle between tests
}
REPORT_EXTRA=()

sha_check() { # name url [curl args]
  local name=$1 url=$2 got
  shift 2
  got=$(curl -sS --max-time 120 "$@" "$url" | sha256sum | cut -d' ' -f1)
  if [[ "$got" == "$BIG_SHA" ]]; then log "sha256 ok via $name"
  else log "ERROR: sha256 mismatch via $name ($got)"; STATUS=1; fi
}

# ---- set up -----------------------------------------------------------------------------------
mkdir -p "$DATA" "$RESULTS/$RUN_ID"
chmod a+x "$ROOT/results" "$RESULTS"; chmod a+rx "$DATA"
BIG="$DATA/big-${BIG_MIB}M.bin"
if [[ ! -s "$BIG" || $(stat -c %s "$BIG") -ne $(( BIG_MIB * 1024 * 1024 )) ]]; then
  log "generating $BIG ($BIG_MIB MiB of random bytes, once)"
  head -c $(( BIG_MIB * 1024 * 1024 )) /dev/urandom >"$BIG.tmp" && mv "$BIG.tmp" "$BIG"
fi
chmod a+r "$BIG"
install -m 644 "$BENCH/small.json" "$DATA/small.json"
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
BIG_PATH="/$(basename "$BIG")"

"$VIGIE" dev-cert --out "$RUN/certs" --name localhost >/dev/null || die "vigie dev-cert failed"
cc -O2 -pthread -o "$RUN/hsload" "$BENCH/hsload.c" -lssl -lcrypto || die "cannot build bench/hsload.c"
BENCH_HASH=$(echo "$BENCH_PASSWORD" | "$VIGIE" hash-password) || die "vigie hash-password failed"
mkdir -p "$RUN/upstream-tmp" "$RUN/nginx-proxy-tmp"

render "$BENCH/nginx-upstream.conf.in" "$RUN/upstream.conf" "RUN=$RUN" "DATA=$DATA" \
  "UP_PORT=$UP_PORT" "UP_H2C_PORT=$UP_H2C_PORT" "UP_WORKERS=$UP_WORKERS"
render "$BENCH/nginx-proxy.conf.in" "$RUN/nginx-proxy.conf" "RUN=$RUN" "UP_PORT=$UP_PORT" \
  "PROXY_PORT=$NGINX_PORT" "CERT=$RUN/certs/server.crt" "KEY=$RUN/certs/server.key"

start_nginx upstream "$RUN/upstream.conf"; UP_PID=$NGINX_PID
wait_200 "http://127.0.0.1:$UP_PORT/small.json"
start_nginx nginx-proxy "$RUN/nginx-proxy.conf"; NGX_PID=$NGINX_PID
CA=(--cacert "$RUN/certs/ca.crt")
wait_200 "https://localhost:$NGINX_PORT/small.json" "${CA[@]}"
start_vigie false warn
# Record the nginx workers too, so cleanup can reach them even if a master is killed.
mapfile -t _w < <( { children "$UP_PID"; children "$NGX_PID"; } | grep -vx -e "$UP_PID" -e "$NGX_PID")
PIDS=("${_w[@]}" "${PIDS[@]}")

DIRECT_H1="http://127.0.0.1:$UP_PORT"
DIRECT_H2C="http://127.0.0.1:$UP_H2C_PORT"
NGINX_URL="https://localhost:$NGINX_PORT"
VIGIE_URL="https://localhost:$VIGIE_PORT"

# Every request to every target carries the same session cookie: Vigie checks it, the others
# ignore it (same header bytes to parse for all).
COOKIE=(-H "Cookie: $VIGIE_COOKIE")

# Every target answers 200 on both paths, h2 is negotiated, and the big body is intact.
for u in "$DIRECT_H1" "$DIRECT_H2C" "$NGINX_URL" "$VIGIE_URL"; do
  extra=("${COOKIE[@]}"); want="200 2"   # status and HTTP version
  if [[ "$u" == https://* ]]; then extra+=("${CA[@]}"); fi
  if [[ "$u" == "$DIRECT_H2C" ]]; then extra+=(--http2-prior-knowledge); fi
  if [[ "$u" == "$DIRECT_H1" ]]; then want="200 1.1"; fi
  code=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' "${extra[@]}" "$u/small.json")
  log "check $u/small.json -> $code"
  [[ "$code" == "$want" ]] || die "$u/small.json answered '$code', expected '$want'"
done
sha_check direct "$DIRECT_H1$BIG_PATH"
sha_check nginx "$NGINX_URL$BIG_PATH" "${CA[@]}"
sha_check vigie "$VIGIE_URL$BIG_PATH" "${CA[@]}" "${COOKIE[@]}"
sha_check vigie-h2 "$VIGIE_URL$BIG_PATH" "${CA[@]}" "${COOKIE[@]}" --http2

# Versions and settings, as the first lines of the run's raw data.
META=$(python3 - "$RUN_ID" "$DURATION" "$CONNS" "$THREADS" "$BIG_CLIENTS" "$BIG_MIB" "$HS_CONNS" \
  "$("$NGINX" -v 2>&1)" "$("$VIGIE" --version)" "$(wrk -v 2>&1 | head -1 || true)" \
  "$(h2load --version | head -1)" "$(openssl version 2>/dev/null || echo '?')" \
  "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')" "$(nproc)" "$(uname -r)" \
  "$(date -Is -r "$VIGIE")" <<'PY'
import json, sys
k = ["run", "duration_s", "conns", "threads", "big_clients", "big_mib", "hs_conns", "nginx", "vigie",
     "wrk", "h2load", "openssl", "git", "cpus", "kernel", "vigie_built"]
print(json.dumps({"meta": dict(zip(k, sys.argv[1:]))}))
PY
)
echo "$META" >"$RUN/meta.json"
log "run $RUN_ID: DURATION=${DURATION}s CONNS=$CONNS THREADS=$THREADS; $META"

# ---- warm-up (pools, caches; not recorded) --------------------------------------------------
for u in "$DIRECT_H1" "$NGINX_URL" "$VIGIE_URL"; do
  wrk -t "$THREADS" -c "$CONNS" -d "${WARMUP}s" "${COOKIE[@]}" "$u/small.json" >/dev/null || die "wrk warm-up failed on $u"
done

# ---- small response, keep-alive --------------------------------------------------------------
WRK=(wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --timeout 10s -s "$BENCH/wrk-report.lua" "${COOKIE[@]}")
log "small h1: wrk ${DURATION}s, $CONNS connections"
measure small_h1 direct wrk "$UP_PID"  "${WRK[@]}" "$DIRECT_H1/small.json"
measure small_h1 nginx  wrk "$NGX_PID" "${WRK[@]}" "$NGINX_URL/small.json"
measure small_h1 vigie  wrk "$VIGIE_PID" "${WRK[@]}" "$VIGIE_URL/small.json"

log "small h2: h2load ${DURATION}s, $CONNS connections, 1 stream each"
H2=(h2load -D "$DURATION" -c "$CONNS" -t "$THREADS" -m 1 "${COOKIE[@]}")
for t in direct nginx vigie; do
  case $t in
    direct) url="$DIRECT_H2C"; pid=$UP_PID ;;
    nginx)  url="$NGINX_URL"; pid=$NGX_PID ;;
    vigie)  url="$VIGIE_URL"; pid=$VIGIE_PID ;;
  esac
  REPORT_EXTRA=("h2log=$RUN/h2-$t.log")
  measure small_h2 "$t" h2load "$pid" "${H2[@]}" --log-file="$RUN/h2-$t.log" "$url/small.json"
  rm -f "$RUN/h2-$t.log"
done
REPORT_EXTRA=()

# ---- 20 concurrent clients x 200 MiB --------------------------------------------------------
# Fixed work (each client fetches the file once); MB/s = body bytes / h2load's elapsed time.
CONNS_USED=$BIG_CLIENTS
BIGLOAD=(h2load -n "$BIG_CLIENTS" -c "$BIG_CLIENTS" -t "$THREADS" "${COOKIE[@]}")
log "download: $BIG_CLIENTS clients x $BIG_MIB MiB, HTTP/1.1 then HTTP/2"
measure download_h1 direct h2load "$UP_PID"    "${BIGLOAD[@]}" --h1 "$DIRECT_H1$BIG_PATH"
measure download_h1 nginx  h2load "$NGX_PID"   "${BIGLOAD[@]}" --h1 "$NGINX_URL$BIG_PATH"
measure download_h1 vigie  h2load "$VIGIE_PID" "${BIGLOAD[@]}" --h1 "$VIGIE_URL$BIG_PATH"
measure download_h2 direct h2load "$UP_PID"    "${BIGLOAD[@]}" "$DIRECT_H2C$BIG_PATH"
measure download_h2 nginx  h2load "$NGX_PID"   "${BIGLOAD[@]}" "$NGINX_URL$BIG_PATH"
measure download_h2 vigie  h2load "$VIGIE_PID" "${BIGLOAD[@]}" "$VIGIE_URL$BIG_PATH"

# ---- new TLS connections ----------------------------------------------------------------------
# hsload: HS_CONNS threads, each looping connect -> full handshake -> GET -> close, with no
# session cache and no tickets on the client, so nothing can be resumed (it counts resumptions;
# they must be 0). wrk and h2load resume sessions when they reconnect, so they cannot be used.
CONNS_USED=$HS_CONNS
log "handshakes: hsload ${DURATION}s, $HS_CONNS concurrent new connections"
export HSLOAD_COOKIE="$VIGIE_COOKIE"
measure handshake nginx hsload "$NGX_PID"   "$RUN/hsload" localhost "$NGINX_PORT" /small.json "$DURATION" "$HS_CONNS"
measure handshake vigie hsload "$VIGIE_PID" "$RUN/hsload" localhost "$VIGIE_PORT" /small.json "$DURATION" "$HS_CONNS"
CONNS_USED=$CONNS

# Vigie's own view: status classes, handshake failures, upstream errors.
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" >"$RESULTS/$RUN_ID/vigie-metrics.txt" || true
grep -E '^vigie_(requests_total|tls_handshake_failures_total|upstream_errors_total)' \
  "$RESULTS/$RUN_ID/vigie-metrics.txt" >&2 || true

# ---- Vigie with the access log on ------------------------------------------------------------
if [[ "$ACCESS_LOG_RUN" == 1 ]]; then
  log "Vigie again with log.access_log: true (level info, JSON lines to a file)"
  stop_pid "$VIGIE_PID"
  start_vigie true info
  # The new process has a new session: the same commands with its cookie.
  COOKIE=(-H "Cookie: $VIGIE_COOKIE")
  WRK=("${WRK[@]:0:${#WRK[@]}-2}" "${COOKIE[@]}")
  H2=("${H2[@]:0:${#H2[@]}-2}" "${COOKIE[@]}")
  wrk -t "$THREADS" -c "$CONNS" -d "${WARMUP}s" "${COOKIE[@]}" "$VIGIE_URL/small.json" >/dev/null || die "wrk warm-up failed"
  measure small_h1 vigie+log wrk "$VIGIE_PID" "${WRK[@]}" "$VIGIE_URL/small.json"
  REPORT_EXTRA=("h2log=$RUN/h2-log.log")
  measure small_h2 vigie+log h2load "$VIGIE_PID" "${H2[@]}" --log-file="$RUN/h2-log.log" "$VIGIE_URL/small.json"
  REPORT_EXTRA=()
  log "access log: $(wc -l <"$RUN/vigie-true.log") lines, $(du -h "$RUN/vigie-true.log" | cut -f1)"
fi

# ---- report -----------------------------------------------------------------------------------
for f in "$RUN"/vigie-*.log "$RUN"/*-error.log; do
  n=$(grep -ciE '"level":"(warn|error)"|\[(warn|error|crit|alert|emerg)\]' "$f" || true)
  (( n == 0 )) || { log "$n warning/error lines in $(basename "$f"):"; grep -iE 'warn|error|crit' "$f" | head -5 >&2; }
done
cp "$RUN/rows.jsonl" "$RESULTS/$RUN_ID/rows.jsonl"
cat "$RUN/meta.json" "$RUN/rows.jsonl" >>"$RESULTS/results.jsonl"
python3 "$BENCH/report.py" summary "$RUN/rows.jsonl" "$RUN_ID" "$RESULTS/$RUN_ID.txt" \
  || die "cannot build the summary"
log "raw rows appended to ${RESULTS#"$ROOT"/}/results.jsonl; table in ${RESULTS#"$ROOT"/}/$RUN_ID.txt"
(( STATUS == 0 )) || log "FAILED: failed requests, a sha256 mismatch or a crashed server (see above)"
exit "$STATUS"
