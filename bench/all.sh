#!/usr/bin/env bash
# make bench: every benchmark the issues ask for, one after the other, each on the production
# setup on 127.0.0.1 (PostgreSQL and Redis on localhost), each writing its figures into
# docs/benchmarks.md (BENCH_DOC). About 40 minutes, plus about 6 to build the console's
# 100,000-conversation database the first time. Run it on a quiet machine: the figures are
# latencies on a shared 2-core box.
#
#   webhooks       bench/run.sh: intake, processing, end to end, saturation (issues 2 and 6)
#   console-ws     python -m bench.console_ws: webhook to an attendant's websocket, idle sockets (issue 7)
#   console-pages  bench/console_pages.py: the console's pages with 100,000 conversations (issue 7)
#   bot            python -m bench.bot_reply: webhook to the bot's reply at Meta (issue 8)
#
# BENCH_ONLY="bot console-ws" runs only those.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-$PWD/.venv/bin/python}
DOC=${BENCH_DOC:-docs/benchmarks.md}
ONLY=${BENCH_ONLY:-webhooks console-ws console-pages bot}

wanted() { [[ " $ONLY " == *" $1 "* ]]; }

if wanted webhooks; then
    echo "== webhooks (bench/run.sh)"
    BENCH_DOC=$DOC bash bench/run.sh
fi
if wanted console-ws; then
    echo "== console websockets (bench/console_ws.py)"
    "$PY" -m bench.console_ws --doc "$DOC"
fi
if wanted console-pages; then
    echo "== console pages (bench/console_pages.py)"
    "$PY" bench/console_pages.py --build-if-missing 100000 --doc "$DOC"
fi
if wanted bot; then
    echo "== bot replies (bench/bot_reply.py)"
    "$PY" -m bench.bot_reply --doc "$DOC"
fi
