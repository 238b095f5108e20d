#!/usr/bin/env bash
# Webhook benchmark (make bench). Starts the app in production mode on 127.0.0.1 only, as
# compose.yaml runs it -- PostgreSQL database atende_bench (dropped and migrated fresh), Redis
# db 14, gunicorn with config/gunicorn.conf.py serving config.wsgi, the Celery worker, beat
# and the webhook listener (when the code has one), each in its own process group -- then
# drives signed webhooks at it, follows them to a channel-layer subscriber, and writes the
# figures to docs/benchmarks.md. Takes about 15-20 minutes.
#
# Knobs (environment): BENCH_PORT (8100), BENCH_DB (atende_bench), BENCH_PG_URL
# (postgres://postgres@127.0.0.1:5432), BENCH_REDIS_URL (redis://127.0.0.1:6379/14; CI's
# tests use db 15), BENCH_E2E_RATES (50,100,200 msg/s, webhook to live event),
# BENCH_E2E_DURATION (30 s each), BENCH_SUSTAIN_RATES (100,150,200,250,300 msg/s, stepped up
# until one does not hold), BENCH_SUSTAIN_DURATION (60 s each), BENCH_DURATION (10 s per
# intake phase), BENCH_RATES (100,300,1000), BENCH_CONNECTIONS (16), BENCH_SAT_ROUNDS (3
# alternating empty-view/webhook saturation pairs), BENCH_WORKER_OFF_RUN (1: repeat the
# intake phases with processing stopped), plus the GUNICORN_* and WEB_CONCURRENCY knobs of
# config/gunicorn.conf.py, and BENCH_DOC (docs/benchmarks.md: where the results go).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
PORT=${BENCH_PORT:-8100}
DB=${BENCH_DB:-atende_bench}
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
E2E_RATES=${BENCH_E2E_RATES:-50,100,200}
E2E_DURATION=${BENCH_E2E_DURATION:-30}
SUSTAIN_RATES=${BENCH_SUSTAIN_RATES:-100,150,200,250,300}
SUSTAIN_DURATION=${BENCH_SUSTAIN_DURATION:-60}
DURATION=${BENCH_DURATION:-10}
RATES=${BENCH_RATES:-100,300,1000}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
SAT_ROUNDS=${BENCH_SAT_ROUNDS:-3}
WORKER_OFF_RUN=${BENCH_WORKER_OFF_RUN:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/atende-bench.XXXXXX")
PIDS=()

log() { printf '\n== %s\n' "$*"; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        # Each server runs in its own process group (setsid): stop the group, then wait.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    redis-cli -u "$REDIS" flushdb >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

# --- Tools --------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian package)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
for tool in psql redis-cli; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install postgresql-client redis-tools)"; exit 1; }
done
if [ ! -x "$PY" ]; then
    log "creating .venv"
    python3 -m venv "$ROOT/.venv" && "$ROOT/.venv/bin/pip" install -q -r requirements.txt
fi

# --- Production-mode environment ------------------------------------------------------------
random_hex() { "$PY" -c "import secrets; print(secrets.token_hex($1))"; }
export DATABASE_URL="$PG_URL/$DB"
export REDIS_URL="$REDIS"
export SECRET_KEY="bench-$(random_hex 24)"
export DJANGO_SETTINGS_MODULE=bench.settings
export WHATSAPP_PHONE_NUMBER_ID=109999999999999
export WHATSAPP_DISPLAY_NUMBER=15550000000
export WHATSAPP_WABA_ID=100000000000000
export WHATSAPP_ACCESS_TOKEN="bench-token-$(random_hex 8)"
export WHATSAPP_APP_SECRET="$(random_hex 16)"
export WHATSAPP_VERIFY_TOKEN="bench-verify-$(random_hex 8)"
# Replies and media downloads the worker may attempt go nowhere: port 9 on this machine.
export WHATSAPP_GRAPH_URL=http://127.0.0.1:9/v23.0
export GUNICORN_BIND="127.0.0.1:$PORT"
# The bench speaks plain HTTP to gunicorn, as the TLS proxy in front of it does in production;
# redirecting to HTTPS is that proxy's job here (.env.example: SECURE_SSL_REDIRECT).
export SECURE_SSL_REDIRECT=false
# No worker recycling while measuring: a restart mid-phase costs a fork and hides the CPU the
# old worker used (its /proc entry is gone), which skewed the empty-view phase of early runs.
export GUNICORN_MAX_REQUESTS="${GUNICORN_MAX_REQUESTS:-0}"
export PYTHONDONTWRITEBYTECODE=1

log "fresh database $DB, Redis $REDIS"
psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
redis-cli -u "$REDIS" flushdb >/dev/null
"$PY" manage.py migrate --noinput -v0
"$PY" manage.py shell -v0 -c "from conversations.services import ensure_default_inbox; ensure_default_inbox()"

# --- Servers ------------------------------------------------------------------------------------
start() {  # start NAME CMD...: run in its own process group, log to $WORK/NAME.log
    local name=$1; shift
    setsid "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    eval "${name^^}_PID=$!"
}
# start_niced NAME CMD...: as start, at nice CELERY_NICE in a scheduling group of its own at that
# nice too. Each setsid session is its own autogroup (kernel.sched_autogroup_enabled), and the
# kernel weighs a thread's nice only against threads of the same group: a niced process in a
# session of its own competes with gunicorn's session as an equal (measured: two busy loops on
# one core, one at nice 10, each in its own session, got the same CPU). compose.yaml's
# cpu_shares do the same for containers. BENCH_AUTOGROUP=0 runs them as before (nice only).
start_niced() {
    local name=$1; shift
    if [ "${BENCH_AUTOGROUP:-1}" = 1 ]; then
        start "$name" sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null || true; exec nice -n "$0" "$@"' \
            "${CELERY_NICE:-10}" "$@"
    else
        start "$name" nice -n "${CELERY_NICE:-10}" "$@"
    fi
}
# The processes compose.yaml runs (besides ws, which serves only websockets), with the same
# command lines: keep in step with it.
start_processing() {
    # Webhook processing weighted down as in compose.yaml (cpu_shares): it can wait a moment,
    # the acknowledgements that share the CPUs cannot.
    start_niced webhooks "$PY" -m celery -A config worker -Q webhooks,dispatch \
        --hostname "webhooks@%h" --loglevel INFO
    start worker "$PY" -m celery -A config worker -Q sending,media,celery --hostname "worker@%h" --loglevel INFO
    # The bot's replies (issue 8) are measured on their own by bench/bot_reply.py: here the
    # bots worker is started only with BENCH_BOTS=1, so these phases measure webhook
    # processing (their reply tasks wait in the broker's "bots" queue).
    if [ "${BENCH_BOTS:-0}" = 1 ]; then
        start bots "$PY" -m celery -A config worker -Q bots --hostname "bots@%h" --loglevel INFO
    fi
    # The listener is weighted like the worker it wakes (compose.yaml): acknowledgements first.
    start_niced listener "$PY" manage.py listen_webhooks
    start beat "$PY" -m celery -A config beat --loglevel INFO \
        --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile=
    PROCESSING_PIDS=("$WEBHOOKS_PID" "$WORKER_PID" "$LISTENER_PID" "$BEAT_PID")
    PROCESSING_GROUPS=(
        --group "worker-webhooks=$WEBHOOKS_PID" --group "worker=$WORKER_PID"
        --group "listener=$LISTENER_PID" --group "beat=$BEAT_PID"
    )
    if [ "${BENCH_BOTS:-0}" = 1 ]; then
        PROCESSING_PIDS+=("$BOTS_PID")
        PROCESSING_GROUPS+=(--group "worker-bots=$BOTS_PID")
    fi
}
start gunicorn "$PY" -m gunicorn -c config/gunicorn.conf.py config.wsgi:application
start_processing
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/" 2>/dev/null && break
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/health/" >/dev/null || { cat "$WORK/gunicorn.log"; exit 1; }
for _ in $(seq 100); do
    grep -q "ready" "$WORK/webhooks.log" && break
    sleep 0.2
done

phases() {  # phases LABEL TITLE [extra args]
    local label=$1 title=$2; shift 2
    "$PY" -m bench.phases --base "http://127.0.0.1:$PORT" --workdir "$WORK" --label "$label" \
        --title "$title" --secret "$WHATSAPP_APP_SECRET" --phone-number-id "$WHATSAPP_PHONE_NUMBER_ID" \
        --display-number "$WHATSAPP_DISPLAY_NUMBER" --waba-id "$WHATSAPP_WABA_ID" \
        --group "gunicorn=$GUNICORN_PID" \
        --duration "$DURATION" --sat-duration "$DURATION" --connections "$CONNECTIONS" \
        --sat-rounds "$SAT_ROUNDS" \
        --out "$WORK/$label.json" "$@"
    RESULTS+=("$WORK/$label.json")
}
RESULTS=()

log "run 1: processing on"
phases on "Processing on, as compose.yaml runs it (three workers, the webhook one niced; listener; beat)" "${PROCESSING_GROUPS[@]}" \
    --rates "$RATES" --e2e-rates "$E2E_RATES" --e2e-duration "$E2E_DURATION" \
    --sustain-rates "$SUSTAIN_RATES" --sustain-duration "$SUSTAIN_DURATION"

if [ "$WORKER_OFF_RUN" = 1 ]; then
    log "run 2: processing off (events wait in the database)"
    for pid in "${PROCESSING_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${PROCESSING_PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    done
    redis-cli -u "$REDIS" del celery webhooks dispatch >/dev/null
    phases off "Processing off (workers, listener and beat stopped)" --rates "300,1000" --warmup 3
fi

log "results"
"$PY" -m bench.report --doc "${BENCH_DOC:-docs/benchmarks.md}" "${RESULTS[@]}"
