#!/usr/bin/env bash
# Webhook benchmark (make bench). Starts the app in production mode on 127.0.0.1 only --
# PostgreSQL database atende_bench (dropped and migrated fresh), Redis db 15, gunicorn with
# config/gunicorn.conf.py serving config.wsgi, one Celery worker -- then drives signed
# webhooks at it and writes the figures to docs/benchmarks.md. Takes about 9 minutes.
#
# Knobs (environment): BENCH_PORT (8100), BENCH_DB (atende_bench), BENCH_PG_URL
# (postgres://postgres@127.0.0.1:5432), BENCH_REDIS_URL (redis://127.0.0.1:6379/15),
# BENCH_DURATION (10 s per phase), BENCH_RATES (100,300,1000), BENCH_CONNECTIONS (16),
# BENCH_SAT_ROUNDS (3 alternating empty-view/webhook saturation pairs),
# BENCH_WORKER_OFF_RUN (1: repeat with the Celery worker stopped), plus the GUNICORN_* and
# WEB_CONCURRENCY knobs of config/gunicorn.conf.py.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
PORT=${BENCH_PORT:-8100}
DB=${BENCH_DB:-atende_bench}
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/15}
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
start_worker() {
    # -B: beat in the same process group, for the dispatcher that hands stored events to the
    # worker every WEBHOOK_DISPATCH_SECONDS (its CPU counts as Celery's).
    # Niced as in compose.yaml: processing is throughput work that can wait a moment, the
    # acknowledgements are what Meta times.
    start celery nice -n "${CELERY_NICE:-10}" "$PY" -m celery -A config worker -B --hostname "atende-bench@%h" --loglevel INFO
}
start gunicorn "$PY" -m gunicorn -c config/gunicorn.conf.py config.wsgi:application
start_worker
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/" 2>/dev/null && break
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/health/" >/dev/null || { cat "$WORK/gunicorn.log"; exit 1; }
for _ in $(seq 100); do
    grep -q "ready" "$WORK/celery.log" && break
    sleep 0.2
done

phases() {  # phases LABEL TITLE CELERY_PID [extra args]
    local label=$1 title=$2 celery_pid=$3; shift 3
    "$PY" -m bench.phases --base "http://127.0.0.1:$PORT" --workdir "$WORK" --label "$label" \
        --title "$title" --secret "$WHATSAPP_APP_SECRET" --phone-number-id "$WHATSAPP_PHONE_NUMBER_ID" \
        --display-number "$WHATSAPP_DISPLAY_NUMBER" --waba-id "$WHATSAPP_WABA_ID" \
        --gunicorn-pid "$GUNICORN_PID" --celery-pid "$celery_pid" \
        --duration "$DURATION" --sat-duration "$DURATION" --connections "$CONNECTIONS" \
        --sat-rounds "$SAT_ROUNDS" \
        --out "$WORK/$label.json" "$@"
    RESULTS+=("$WORK/$label.json")
}
RESULTS=()

log "run 1: Celery worker on"
phases on "Celery worker and beat on (1 worker, prefork, concurrency = nproc)" "$CELERY_PID" --rates "$RATES"

if [ "$WORKER_OFF_RUN" = 1 ]; then
    log "run 2: Celery worker and beat off (events wait in the database)"
    kill -TERM -- "-$CELERY_PID"
    for _ in $(seq 100); do kill -0 "$CELERY_PID" 2>/dev/null || break; sleep 0.2; done
    redis-cli -u "$REDIS" del celery >/dev/null
    phases off "Celery worker and beat off" 0 --rates "300,1000"
fi

log "results"
"$PY" -m bench.report "${RESULTS[@]}"
