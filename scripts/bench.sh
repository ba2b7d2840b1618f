#!/usr/bin/env bash
# Benchmark Vigie against nginx (same TLS certificate, same upstream) and against the upstream
# itself ("direct", plain HTTP), all on 127.0.0.1, in one run:
#   small    ~300-byte JSON, CONNS keep-alive connections: wrk (HTTP/1.1) and h2load (HTTP/2)
#   download 20 clients each fetch a 200 MiB random file (h2load, HTTP/1.1 then HTTP/2),
#            with the proxy's peak RSS (VmRSS sampled at 10 Hz) and CPU seconds
#   handshake new TLS connections/s, each a full handshake + one small GET (bench/hsload.c)
#   orthanc  the same small-response tests with a real Orthanc 1.10 as the upstream (GET /system,
#            Debian package, default HttpThreadsCount 50, bench/orthanc.json.in): nginx and a
#            second Vigie in front of it, and Orthanc direct (h1), with the peak number of
#            connections each proxy held to Orthanc
#   audit    the audit trail's cost (issue 10): Vigie with audit.record_access true vs false,
#            fresh processes alternated over AUDIT_ROUNDS rounds, on the small tests and on image
#            scrolling (wrk cycling through 10 studies x 1,000 /instances/{id}/preview, 16 KiB
#            each, the nginx upstream answering the resolver's questions in Orthanc's shapes);
#            then a burst of exactly 10,000 image requests in one session, after which the trail
#            must hold exactly 10 study_access view records summing to 10,000 requests and pass
#            `vigie audit verify` (PASS/FAIL; a FAIL makes the exit status 1)
# Vigie runs with sign-in on: the script signs in once (bench/signin.py) and every request to
# every target carries that session cookie, so Vigie checks a session on each request.
# Then Vigie once more with its access log on. Prints ratios and PASS/FAIL per target, appends
# the raw numbers to results/bench/results.jsonl and the table to results/bench/<run>.txt.
# Exit status: 0 ok, 1 some measurement had >1 % failed requests, a sha256 mismatch, a crash or
# a failed audit burst check, 2 missing tool / setup error. Missed performance targets do not change the exit status.
#
# Env: DURATION (10 s per timed test)  CONNS (50)  THREADS (2)  HS_CONNS (CONNS)
#      TESTS ("small download handshake orthanc": the sections to run, in that order; also audit)
#      AUDIT_ROUNDS (2: on/off alternations in the audit section, the order flips each round)
#      ORTHANC_BIN (/usr/sbin/Orthanc)  ORTHANC_ROUNDS (1: nginx/Vigie alternations behind Orthanc)
#      UP_MAX_CONNS (128: Vigie's upstream.max_connections towards the nginx upstream)
#      ORTHANC_MAX_CONNS ("": Vigie's upstream.max_connections behind Orthanc; empty: its default)
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
TESTS="${TESTS:-small download handshake orthanc}"
ORTHANC_ROUNDS="${ORTHANC_ROUNDS:-1}"
AUDIT_ROUNDS="${AUDIT_ROUNDS:-2}"
# The nginx upstream serves any number of connections and the nginx proxy does not bound its
# connections to it: Vigie gets as many (its default, 40 for Orthanc's 50 threads, would make 10
# of the 50 clients wait inside Vigie, a cost measured apart in docs/BENCHMARKS.md).
UP_MAX_CONNS="${UP_MAX_CONNS:-128}"
ORTHANC_MAX_CONNS="${ORTHANC_MAX_CONNS:-}"
has() { [[ " $TESTS " == *" $1 "* ]]; }

# free_ports, totp_tool; log and die are this script's own (exit status 2 for a setup error).
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ---- preflight --------------------------------------------------------------------------------
[[ "$DURATION" =~ ^[0-9]+$ && "$CONNS" =~ ^[0-9]+$ && "$HS_CONNS" =~ ^[0-9]+$ \
   && "$ORTHANC_ROUNDS" =~ ^[1-9]$ && "$AUDIT_ROUNDS" =~ ^[1-9]$ && "$UP_MAX_CONNS" =~ ^[1-9][0-9]*$ \
   && "$ORTHANC_MAX_CONNS" =~ ^([1-9][0-9]*)?$ ]] \
  || die "DURATION, CONNS, HS_CONNS, UP_MAX_CONNS and ORTHANC_MAX_CONNS must be integers, ORTHANC_ROUNDS and AUDIT_ROUNDS 1..9"
for t in $TESTS; do
  [[ " small download handshake orthanc audit " == *" $t "* ]] \
    || die "unknown test '$t' in TESTS (known: small download handshake orthanc audit)"
done
(( DURATION >= 1 && DURATION <= 120 && CONNS >= 1 && CONNS <= 1000 && HS_CONNS <= 1000 )) \
  || die "refusing: DURATION must be 1..120 s, CONNS and HS_CONNS 1..1000"
missing=()
for t in wrk h2load curl python3 jq cc sha256sum timeout awk; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
[[ -x "$NGINX" ]] || missing+=("nginx ($NGINX)")
[[ -r /usr/include/openssl/ssl.h ]] || missing+=("OpenSSL headers (libssl-dev)")
if has orthanc; then
  # shellcheck source=scripts/orthanc.sh
  . "$ROOT/scripts/orthanc.sh"
  [[ -x "$ORTHANC_BIN" ]] || missing+=("Orthanc ($ORTHANC_BIN; or leave orthanc out of TESTS)")
  command -v ss >/dev/null 2>&1 || missing+=("ss (iproute2)")
fi
if (( ${#missing[@]} )); then
  die "missing tools: ${missing[*]}. On Debian: apt-get install nginx wrk nghttp2-client curl gcc libssl-dev orthanc iproute2"
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
read -r UP_PORT UP_H2C_PORT NGINX_PORT VIGIE_PORT ADMIN_PORT \
  ORTHANC_PORT NGINX_O_PORT VIGIE_O_PORT ADMIN_O_PORT \
  VIGIE_AON_PORT ADMIN_AON_PORT VIGIE_AOFF_PORT ADMIN_AOFF_PORT < <(free_ports 13)

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
# start_vigie access_log level [name upstream_port path port admin_port max_conns record_access]
# -> VIGIE_PID, VIGIE_COOKIE; logs to $RUN/vigie-<name>.log (name: the access_log value).
# Defaults: the nginx upstream, /small.json, $VIGIE_PORT, $ADMIN_PORT, $UP_MAX_CONNS, true.
# path: the health path and the first request; max_conns "": Vigie's default.
start_vigie() {
  local access=$1 level=$2 name=${3:-$1} up=${4:-$UP_PORT} path=${5:-/small.json}
  local port=${6:-$VIGIE_PORT} admin=${7:-$ADMIN_PORT} max_up=${8-$UP_MAX_CONNS}
  local record=${9:-true}
  # A fresh state directory each start: a second sign-in with the same TOTP code would be a replay.
  render "$BENCH/vigie.yaml.in" "$RUN/vigie-$name.yaml" \
    "VIGIE_PORT=$port" "ADMIN_PORT=$admin" "UP_PORT=$up" "HEALTH=$path" "MAX_UP=$max_up" \
    "CERT=$RUN/certs/server.crt" "KEY=$RUN/certs/server.key" \
    "ACCESS_LOG=$access" "LOG_LEVEL=$level" "STATE=$RUN/state-$name" "RECORD_ACCESS=$record" \
    "HASH=$BENCH_HASH" "TOTP=$BENCH_TOTP"
  "$VIGIE" serve --config "$RUN/vigie-$name.yaml" >"$RUN/vigie-$name.log" 2>&1 &
  VIGIE_PID=$!
  PIDS+=("$VIGIE_PID")
  local i
  for i in $(seq 150); do
    curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$admin/readyz" && break
    kill -0 "$VIGIE_PID" 2>/dev/null || { cat "$RUN/vigie-$name.log" >&2; die "vigie exited"; }
    sleep 0.1
  done
  local code
  code=$(printf '%s\n' "$BENCH_TOTP" | "$TOTP_BIN") || die "$TOTP_BIN gave no TOTP code"
  VIGIE_COOKIE=$(python3 "$BENCH/signin.py" localhost "$port" bench "$BENCH_PASSWORD" "$code") \
    || die "cannot sign in to vigie"
  wait_200 "https://localhost:$port$path" --cacert "$RUN/certs/ca.crt" -H "Cookie: $VIGIE_COOKIE"
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

up_conns() { # port pids...: established connections from these processes to 127.0.0.1:port
  local port=$1 re
  shift
  re=$(printf 'pid=%s,|' "$@"); re=${re%|}
  ss -Htnp state established "dport = :$port" 2>/dev/null | grep -cE "$re" || true
}

# measure test target tool pid cmd...: runs one load test while sampling the server tree,
# then hands the output to report.py (which appends a JSON row). pid "" = no sampling.
# With UPCONN_PORT set, also the peak number of connections the server tree held to that port.
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
    echo 0 >"$RUN/upconns"
    ( peak=$base up=0
      while :; do
        r=$(proc_sum VmRSS "${pids[@]}")
        # Written aside then renamed: the sampler is killed at any moment, and a file it had
        # just truncated would be read as an empty peak.
        if (( r > peak )); then peak=$r; echo "$peak" >"$RUN/peak.tmp"; mv -f "$RUN/peak.tmp" "$RUN/peak"; fi
        if [[ -n "${UPCONN_PORT:-}" ]]; then
          c=$(up_conns "$UPCONN_PORT" "${pids[@]}")
          if (( c > up )); then up=$c; echo "$up" >"$RUN/upconns.tmp"; mv -f "$RUN/upconns.tmp" "$RUN/upconns"; fi
        fi
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
    if [[ -n "${UPCONN_PORT:-}" ]]; then extra+=("up_conns_peak=$(cat "$RUN/upconns")"); fi
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
# The image the audit section's viewer scrolls through (any bytes: nobody decodes them).
PREVIEW="$DATA/preview.png"
if [[ ! -s "$PREVIEW" || $(stat -c %s "$PREVIEW") -ne 16384 ]]; then
  head -c 16384 /dev/urandom >"$PREVIEW.tmp" && mv "$PREVIEW.tmp" "$PREVIEW"
fi
chmod a+r "$PREVIEW"
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
BIG_PATH="/$(basename "$BIG")"

"$VIGIE" dev-cert --out "$RUN/certs" --name localhost >/dev/null || die "vigie dev-cert failed"
cc -O2 -pthread -o "$RUN/hsload" "$BENCH/hsload.c" -lssl -lcrypto || die "cannot build bench/hsload.c"
BENCH_HASH=$(echo "$BENCH_PASSWORD" | "$VIGIE" hash-password) || die "vigie hash-password failed"
# The sign-in code comes from Vigie's own TOTP implementation (examples/totp.rs).
TOTP_BIN=$(totp_tool release) || exit 2
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
NGXO_PID=""
if has orthanc; then
  # Orthanc 1.10 on a free loopback port, then nginx and a second Vigie in front of it.
  orthanc_shim || die "cannot build $ORTHANC_SHIM from $ORTHANC_SHIM_SRC (gcc, libc6-dev)"
  mkdir -p "$RUN/orthanc/db" "$RUN/o/nginx-proxy-tmp"
  render "$BENCH/orthanc.json.in" "$RUN/orthanc/orthanc.json" "DIR=$RUN/orthanc" "HTTP_PORT=$ORTHANC_PORT"
  orthanc_start "$RUN/orthanc/orthanc.json" "$RUN/orthanc/orthanc.log" "$RUN/orthanc/stdout.log"
  PIDS+=("$ORTHANC_PID")
  rc=0
  orthanc_wait "http://127.0.0.1:$ORTHANC_PORT/system" 600 || rc=$?
  if (( rc != 0 )); then
    tail -20 "$RUN/orthanc/stdout.log" "$RUN/orthanc/orthanc.log" >&2 || true
    die "Orthanc ($ORTHANC_BIN) did not answer on 127.0.0.1:$ORTHANC_PORT/system ($( ((rc == 1)) && echo exited || echo 'not within 60 s'))"
  fi
  orthanc_loopback_only "$ORTHANC_PID" \
    || die "Orthanc listens beyond loopback: $(ss -Hltnp | grep "pid=$ORTHANC_PID," | awk '{print $4}' | tr '\n' ' ')"
  render "$BENCH/nginx-proxy.conf.in" "$RUN/o/nginx-proxy.conf" "RUN=$RUN/o" "UP_PORT=$ORTHANC_PORT" \
    "PROXY_PORT=$NGINX_O_PORT" "CERT=$RUN/certs/server.crt" "KEY=$RUN/certs/server.key"
  start_nginx nginx-orthanc "$RUN/o/nginx-proxy.conf"; NGXO_PID=$NGINX_PID
  wait_200 "https://localhost:$NGINX_O_PORT/system" --cacert "$RUN/certs/ca.crt"
  # upstream.max_connections at its default unless ORTHANC_MAX_CONNS says otherwise.
  start_vigie false warn orthanc "$ORTHANC_PORT" /system "$VIGIE_O_PORT" "$ADMIN_O_PORT" "$ORTHANC_MAX_CONNS"
  VIGIE_O_PID=$VIGIE_PID VIGIE_O_COOKIE=$VIGIE_COOKIE
fi
start_vigie false warn
# Record the nginx workers too, so cleanup can reach them even if a master is killed.
masters=("$UP_PID" "$NGX_PID" ${NGXO_PID:+"$NGXO_PID"})
mapfile -t _w < <( for m in "${masters[@]}"; do children "$m"; done | grep -vxF "${masters[@]/#/-e}")
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
if has audit; then
  # The upstream answers the resolver's three questions in Orthanc's shapes, and the image.
  a_id=00000007-0000002a-a1a1a1a1-b2b2b2b2-c3c3c3c3
  a_series=$(curl -sf "$DIRECT_H1/instances/$a_id" | jq -r .ParentSeries) || a_series=""
  a_study=$(curl -sf "$DIRECT_H1/series/$a_series" | jq -r .ParentStudy) || a_study=""
  a_pid=$(curl -sf "$DIRECT_H1/studies/$a_study" | jq -r .PatientMainDicomTags.PatientID) || a_pid=""
  code=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$DIRECT_H1/instances/$a_id/preview")
  log "check the Orthanc-shaped upstream: $a_id -> $a_series -> $a_study -> $a_pid; preview $code"
  [[ "$a_pid" == BENCH-00000007 && "$code" == "200 16384" ]] \
    || die "the upstream does not answer the audit section's Orthanc-shaped requests"
fi
if has orthanc; then
  ORTHANC_URL="http://127.0.0.1:$ORTHANC_PORT"
  NGINX_O_URL="https://localhost:$NGINX_O_PORT"
  VIGIE_O_URL="https://localhost:$VIGIE_O_PORT"
  for u in "$ORTHANC_URL" "$NGINX_O_URL" "$VIGIE_O_URL"; do
    extra=(-H "Cookie: $VIGIE_O_COOKIE"); want="200 2"
    if [[ "$u" == https://* ]]; then extra+=("${CA[@]}"); else want="200 1.1"; fi
    code=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' "${extra[@]}" "$u/system")
    log "check $u/system -> $code"
    [[ "$code" == "$want" ]] || die "$u/system answered '$code', expected '$want'"
  done
fi

# Versions and settings, as the first lines of the run's raw data.
META=$(jq -nc --args '{meta: ([["run", "duration_s", "conns", "threads", "big_clients", "big_mib",
    "hs_conns", "nginx", "vigie", "wrk", "h2load", "openssl", "git", "cpus", "kernel", "vigie_built",
    "tests", "orthanc_rounds", "up_max_conns", "orthanc_max_conns"], $ARGS.positional]
    | transpose | map({key: .[0], value: .[1]}) | from_entries)}' \
  "$RUN_ID" "$DURATION" "$CONNS" "$THREADS" "$BIG_CLIENTS" "$BIG_MIB" "$HS_CONNS" \
  "$("$NGINX" -v 2>&1)" "$("$VIGIE" --version)" "$(wrk -v 2>&1 | head -1 || true)" \
  "$(h2load --version | head -1)" "$(openssl version 2>/dev/null || echo '?')" \
  "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')" "$(nproc)" "$(uname -r)" \
  "$(date -Is -r "$VIGIE")" "$TESTS" "$ORTHANC_ROUNDS" "$UP_MAX_CONNS" "${ORTHANC_MAX_CONNS:-default}")
echo "$META" >"$RUN/meta.json"
log "run $RUN_ID: DURATION=${DURATION}s CONNS=$CONNS THREADS=$THREADS; $META"

# ---- small response, keep-alive --------------------------------------------------------------
WRK=(wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --timeout 10s -s "$BENCH/wrk-report.lua" "${COOKIE[@]}")
H2=(h2load -D "$DURATION" -c "$CONNS" -t "$THREADS" -m 1 "${COOKIE[@]}")
if has small; then
# Warm-up (pools, caches; not recorded).
for u in "$DIRECT_H1" "$NGINX_URL" "$VIGIE_URL"; do
  wrk -t "$THREADS" -c "$CONNS" -d "${WARMUP}s" "${COOKIE[@]}" "$u/small.json" >/dev/null || die "wrk warm-up failed on $u"
done
log "small h1: wrk ${DURATION}s, $CONNS connections"
measure small_h1 direct wrk "$UP_PID"  "${WRK[@]}" "$DIRECT_H1/small.json"
measure small_h1 nginx  wrk "$NGX_PID" "${WRK[@]}" "$NGINX_URL/small.json"
measure small_h1 vigie  wrk "$VIGIE_PID" "${WRK[@]}" "$VIGIE_URL/small.json"

log "small h2: h2load ${DURATION}s, $CONNS connections, 1 stream each"
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
fi

# ---- 20 concurrent clients x 200 MiB --------------------------------------------------------
# Fixed work (each client fetches the file once); MB/s = body bytes / h2load's elapsed time.
if has download; then
CONNS_USED=$BIG_CLIENTS
BIGLOAD=(h2load -n "$BIG_CLIENTS" -c "$BIG_CLIENTS" -t "$THREADS" "${COOKIE[@]}")
log "download: $BIG_CLIENTS clients x $BIG_MIB MiB, HTTP/1.1 then HTTP/2"
measure download_h1 direct h2load "$UP_PID"    "${BIGLOAD[@]}" --h1 "$DIRECT_H1$BIG_PATH"
measure download_h1 nginx  h2load "$NGX_PID"   "${BIGLOAD[@]}" --h1 "$NGINX_URL$BIG_PATH"
measure download_h1 vigie  h2load "$VIGIE_PID" "${BIGLOAD[@]}" --h1 "$VIGIE_URL$BIG_PATH"
measure download_h2 direct h2load "$UP_PID"    "${BIGLOAD[@]}" "$DIRECT_H2C$BIG_PATH"
measure download_h2 nginx  h2load "$NGX_PID"   "${BIGLOAD[@]}" "$NGINX_URL$BIG_PATH"
measure download_h2 vigie  h2load "$VIGIE_PID" "${BIGLOAD[@]}" "$VIGIE_URL$BIG_PATH"
CONNS_USED=$CONNS
fi

# ---- new TLS connections ----------------------------------------------------------------------
# hsload: HS_CONNS threads, each looping connect -> full handshake -> GET -> close, with no
# session cache and no tickets on the client, so nothing can be resumed (it counts resumptions;
# they must be 0). wrk and h2load resume sessions when they reconnect, so they cannot be used.
if has handshake; then
CONNS_USED=$HS_CONNS
log "handshakes: hsload ${DURATION}s, $HS_CONNS concurrent new connections"
export HSLOAD_COOKIE="$VIGIE_COOKIE"
measure handshake nginx hsload "$NGX_PID"   "$RUN/hsload" localhost "$NGINX_PORT" /small.json "$DURATION" "$HS_CONNS"
measure handshake vigie hsload "$VIGIE_PID" "$RUN/hsload" localhost "$VIGIE_PORT" /small.json "$DURATION" "$HS_CONNS"
CONNS_USED=$CONNS
fi

# ---- behind a real Orthanc --------------------------------------------------------------------
# Same small-response tests with Orthanc as the upstream (GET /system, 330 bytes of JSON).
# Orthanc serves 50 connections at once and keeps an idle keep-alive connection's thread for 1 s,
# so each test starts only once no connection to it is left (the previous target's would hold
# its threads), and the peak number of connections each proxy holds to it is recorded.
quiet_orthanc() { # waits (up to 5 s) until no connection to Orthanc is established
  local i
  for i in $(seq 50); do
    [[ -z "$(ss -Htn state established "dport = :$ORTHANC_PORT" 2>/dev/null)" ]] && return 0
    sleep 0.1
  done
  log "WARNING: connections to Orthanc still open before the next test"
}
if has orthanc; then
  O_COOKIE=(-H "Cookie: $VIGIE_O_COOKIE")
  for u in "$ORTHANC_URL" "$NGINX_O_URL" "$VIGIE_O_URL"; do
    wrk -t "$THREADS" -c "$CONNS" -d "${WARMUP}s" "${O_COOKIE[@]}" "$u/system" >/dev/null || die "wrk warm-up failed on $u"
  done
  OWRK=(wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --timeout 10s -s "$BENCH/wrk-report.lua" "${O_COOKIE[@]}")
  OH2=(h2load -D "$DURATION" -c "$CONNS" -t "$THREADS" -m 1 "${O_COOKIE[@]}")
  log "behind Orthanc: GET /system, wrk then h2load ${DURATION}s, $CONNS connections, $ORTHANC_ROUNDS round(s)"
  quiet_orthanc
  measure orthanc_h1 direct wrk "$ORTHANC_PID" "${OWRK[@]}" "$ORTHANC_URL/system"
  UPCONN_PORT=$ORTHANC_PORT
  for (( r = 1; r <= ORTHANC_ROUNDS; r++ )); do
    # Alternate which proxy goes first, so that a drift in the machine's load favours neither.
    order=(nginx vigie); (( r % 2 )) || order=(vigie nginx)
    for proto in h1 h2; do
      for t in "${order[@]}"; do
        case $t in
          nginx) url="$NGINX_O_URL"; pid=$NGXO_PID ;;
          vigie) url="$VIGIE_O_URL"; pid=$VIGIE_O_PID ;;
        esac
        quiet_orthanc
        if [[ $proto == h1 ]]; then
          REPORT_EXTRA=("round=$r")
          measure orthanc_h1 "$t" wrk "$pid" "${OWRK[@]}" "$url/system"
        else
          REPORT_EXTRA=("round=$r" "h2log=$RUN/h2-o-$t.log")
          measure orthanc_h2 "$t" h2load "$pid" "${OH2[@]}" --log-file="$RUN/h2-o-$t.log" "$url/system"
          rm -f "$RUN/h2-o-$t.log"
        fi
      done
    done
  done
  UPCONN_PORT=""
  REPORT_EXTRA=()
  curl -s "http://127.0.0.1:$ADMIN_O_PORT/metrics" >"$RESULTS/$RUN_ID/vigie-orthanc-metrics.txt" || true
  grep -E '^vigie_(requests_total|upstream_errors_total|upstream_queued_total)' \
    "$RESULTS/$RUN_ID/vigie-orthanc-metrics.txt" >&2 || true
fi

# Vigie's own view: status classes, handshake failures, upstream errors.
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" >"$RESULTS/$RUN_ID/vigie-metrics.txt" || true
grep -E '^vigie_(requests_total|tls_handshake_failures_total|upstream_errors_total)' \
  "$RESULTS/$RUN_ID/vigie-metrics.txt" >&2 || true

# ---- Vigie with the access log on ------------------------------------------------------------
if [[ "$ACCESS_LOG_RUN" == 1 ]] && has small; then
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

# ---- the audit trail's cost (issue 10) ---------------------------------------------------------
# Vigie with audit.record_access true ("on", the default) and false ("off"), two fresh processes
# per round, measured one after the other on each test (the order flips each round, so that a
# drift in the machine's load favours neither). Fresh processes: the resolver's cache starts
# empty, as for a viewer opening studies the gateway has not seen. Then the burst.
AUDIT_STUDIES=10
AUDIT_INSTANCES=1000
image_paths() { # prefix: one URL per line, study after study, instance after instance
  local s n
  for (( s = 1; s <= AUDIT_STUDIES; s++ )); do
    for (( n = 0; n < AUDIT_INSTANCES; n++ )); do
      printf '%s/instances/%08d-%08x-a1a1a1a1-b2b2b2b2-c3c3c3c3/preview\n' "$1" "$s" "$n"
    done
  done
}
term_wait() { # pid seconds: SIGTERM, wait up to that long (then KILL) -> TERM_RC, its exit status
  local p=$1 i
  TERM_RC=0
  kill -TERM "$p" 2>/dev/null || true
  for (( i = 0; i < $2 * 10; i++ )); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then log "ERROR: pid $p still running $2 s after SIGTERM"; kill -KILL "$p" 2>/dev/null || true; fi
  wait "$p" 2>/dev/null || TERM_RC=$?
}
trail_views() { # state_dir: "records requests studies unresolved" of the study_access view records
  local files=("$1"/audit/audit-*.jsonl)
  [[ -e "${files[0]}" ]] || { echo "0 0 0 0"; return; }
  jq -rs '[.[] | .event // empty | select(.type == "study_access" and .operation == "view")]
    | [length, (map(.requests) | add // 0), (map(.study.uid // empty) | unique | length),
       (map(select(.unresolved != null)) | length)] | @tsv' "${files[@]}" | tr '\t' ' '
}
if has audit; then
  image_paths "" >"$RUN/images.txt"
  log "audit: record_access on vs off, $AUDIT_ROUNDS round(s), small h1/h2 and image scrolling" \
    "($AUDIT_STUDIES studies x $AUDIT_INSTANCES previews of $(stat -c %s "$PREVIEW") bytes), ${DURATION}s each"
  for (( r = 1; r <= AUDIT_ROUNDS; r++ )); do
    order=(on off); (( r % 2 )) || order=(off on)
    start_vigie false warn "audit-on-$r" "$UP_PORT" /small.json "$VIGIE_AON_PORT" "$ADMIN_AON_PORT" "$UP_MAX_CONNS" true
    AON_PID=$VIGIE_PID AON_COOKIE=$VIGIE_COOKIE
    start_vigie false warn "audit-off-$r" "$UP_PORT" /small.json "$VIGIE_AOFF_PORT" "$ADMIN_AOFF_PORT" "$UP_MAX_CONNS" false
    AOFF_PID=$VIGIE_PID AOFF_COOKIE=$VIGIE_COOKIE
    for m in "${order[@]}"; do
      if [[ $m == on ]]; then port=$VIGIE_AON_PORT ck=$AON_COOKIE; else port=$VIGIE_AOFF_PORT ck=$AOFF_COOKIE; fi
      wrk -t "$THREADS" -c "$CONNS" -d "${WARMUP}s" -H "Cookie: $ck" "https://localhost:$port/small.json" >/dev/null \
        || die "wrk warm-up failed on audit-$m-$r"
    done
    for test in small_h1 small_h2 images_h1; do
      for m in "${order[@]}"; do
        if [[ $m == on ]]; then port=$VIGIE_AON_PORT ck=$AON_COOKIE pid=$AON_PID
        else port=$VIGIE_AOFF_PORT ck=$AOFF_COOKIE pid=$AOFF_PID; fi
        url="https://localhost:$port"
        REPORT_EXTRA=("round=$r")
        case $test in
          small_h1)
            measure audit_small_h1 "audit_$m" wrk "$pid" wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" \
              --timeout 10s -s "$BENCH/wrk-report.lua" -H "Cookie: $ck" "$url/small.json" ;;
          small_h2)
            REPORT_EXTRA+=("h2log=$RUN/h2-audit.log")
            measure audit_small_h2 "audit_$m" h2load "$pid" h2load -D "$DURATION" -c "$CONNS" -t "$THREADS" \
              -m 1 -H "Cookie: $ck" --log-file="$RUN/h2-audit.log" "$url/small.json"
            rm -f "$RUN/h2-audit.log" ;;
          images_h1)
            measure audit_images_h1 "audit_$m" wrk "$pid" wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" \
              --timeout 10s -s "$BENCH/wrk-images.lua" -H "Cookie: $ck" "$url/" -- "$RUN/images.txt" "$THREADS" ;;
        esac
      done
    done
    REPORT_EXTRA=()
    # Stopped gracefully: the open viewings are recorded, which says the grouping held under load.
    term_wait "$AON_PID" 30
    read -r n sum studies unres < <(trail_views "$RUN/state-audit-on-$r")
    log "audit-on-$r stopped (exit $TERM_RC): $n study_access view records, $sum requests, $studies studies, $unres unresolved"
    (( TERM_RC == 0 )) || { log "ERROR: audit-on-$r exited with $TERM_RC"; STATUS=1; }
    term_wait "$AOFF_PID" 30
    (( TERM_RC == 0 )) || { log "ERROR: audit-off-$r exited with $TERM_RC"; STATUS=1; }
  done

  # The burst: exactly 10,000 image requests, every image once, in one session (one h2 connection,
  # as a browser's, 16 streams at once) against a fresh state directory; then SIGTERM.
  log "audit burst: 10,000 image requests over $AUDIT_STUDIES studies, one session, then SIGTERM"
  start_vigie false warn audit-burst "$UP_PORT" /small.json "$VIGIE_AON_PORT" "$ADMIN_AON_PORT" "$UP_MAX_CONNS" true
  image_paths "https://localhost:$VIGIE_AON_PORT" >"$RUN/burst-urls.txt"
  burst_n=$(wc -l <"$RUN/burst-urls.txt")
  CONNS_USED=1
  REPORT_EXTRA=("round=1")
  measure audit_burst audit_on h2load "$VIGIE_PID" h2load -n "$burst_n" -c 1 -t 1 -m 16 \
    -H "Cookie: $VIGIE_COOKIE" -i "$RUN/burst-urls.txt"
  CONNS_USED=$CONNS
  REPORT_EXTRA=()
  burst_ok=$(awk '/^status codes: / { print $3 + 0; exit }' "$RUN/out-audit_burst-audit_on.txt")
  t0=$(date +%s.%N)
  term_wait "$VIGIE_PID" 60
  rc=$TERM_RC
  stop_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  read -r n sum studies unres < <(trail_views "$RUN/state-audit-burst")
  if verify_out=$("$VIGIE" audit verify --config "$RUN/vigie-audit-burst.yaml" 2>&1); then verified=ok
  else verified=failed; fi
  log "audit burst: $burst_ok of $burst_n answered 2xx; Vigie stopped in ${stop_s}s (exit $rc);" \
    "trail: $n study_access view records, $sum requests, $studies studies, $unres unresolved; verify: $verify_out"
  pass=false
  [[ "$burst_ok" =~ ^[0-9]+$ ]] || burst_ok=0
  if [[ "$burst_ok" == "$burst_n" && "$n" == "$AUDIT_STUDIES" && "$sum" == "$burst_n" && "$studies" == "$AUDIT_STUDIES" \
        && "$unres" == 0 && "$verified" == ok && "$rc" == 0 ]]; then
    pass=true
  else
    STATUS=1
  fi
  log "audit burst: $( [[ $pass == true ]] && echo PASS || echo FAIL ) (expected $AUDIT_STUDIES records summing to $burst_n requests)"
  jq -nc --arg run "$RUN_ID" --arg ts "$(date -Is)" --arg verify "$verified" --argjson pass "$pass" \
    --argjson requests "$burst_n" --argjson ok2xx "$burst_ok" --argjson records "$n" --argjson sum "$sum" \
    --argjson studies "$studies" --argjson unresolved "$unres" --argjson exit "$rc" --argjson stop_s "$stop_s" \
    --argjson want "$AUDIT_STUDIES" \
    '{run: $run, ts: $ts, test: "audit_burst_trail", target: "trail", requests: $requests, ok2xx: $ok2xx,
      expected_records: $want, records: $records, requests_sum: $sum, studies: $studies,
      unresolved: $unresolved, vigie_exit: $exit, stop_s: $stop_s, verify: $verify, pass: $pass}' \
    >>"$RUN/rows.jsonl"
fi

# ---- report -----------------------------------------------------------------------------------
for f in "$RUN"/vigie-*.log "$RUN"/*-error.log "$RUN"/o/*-error.log; do
  [[ -e "$f" ]] || continue
  n=$(grep -ciE '"level":"(warn|error)"|\[(warn|error|crit|alert|emerg)\]' "$f" || true)
  (( n == 0 )) || { log "$n warning/error lines in $(basename "$f"):"; grep -iE 'warn|error|crit' "$f" | head -5 >&2; }
done
cp "$RUN/rows.jsonl" "$RESULTS/$RUN_ID/rows.jsonl"
cat "$RUN/meta.json" "$RUN/rows.jsonl" >>"$RESULTS/results.jsonl"
python3 "$BENCH/report.py" summary "$RUN/rows.jsonl" "$RUN_ID" "$RESULTS/$RUN_ID.txt" \
  || die "cannot build the summary"
log "raw rows appended to ${RESULTS#"$ROOT"/}/results.jsonl; table in ${RESULTS#"$ROOT"/}/$RUN_ID.txt"
(( STATUS == 0 )) || log "FAILED: failed requests, a sha256 mismatch, a crashed server or the audit burst (see above)"
exit "$STATUS"
