"""The bot's Celery tasks (queue "bots"): thin, idempotent, each calls a service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from bots import notices, pipeline, sweep

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def reply(conversation_id: int) -> str:
    """One bot turn. Idempotent: it answers only messages still unanswered, under a lease, so a
    duplicate delivery or a redelivery after a worker died answers nothing twice."""
    run = pipeline.run_turn(conversation_id)
    return run.outcome if run is not None else "nothing"


# Not acks_late: a lost sweep costs nothing, the next one (BOT_SWEEP_SECONDS later) does its work.
@shared_task(acks_late=False, ignore_result=True)
def sweep_unanswered() -> int:
    """Queue a turn for every bot-owned conversation whose customer waits without an answer or
    a decision (a lost task, a worker that died holding its lease)."""
    return len(sweep.queue_unanswered())


@shared_task(acks_late=False, ignore_result=True)
def send_wait_notices() -> Any:
    """Customers waiting long in the queue are told again where they stand (bots.notices)."""
    return notices.send_wait_notices()
