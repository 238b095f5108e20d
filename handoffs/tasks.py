"""Celery tasks of the queue: thin and idempotent, each calls a service. Queued by name
(``conversations.jobs``) after commit by the services, and by beat (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from handoffs import services


# Not acks_late: a lost run costs nothing, beat runs it again every HANDOFF_ASSIGN_SECONDS; the
# queue itself is in the rows.
@shared_task(name="handoffs.tasks.assign_queue", acks_late=False, ignore_result=True)
def assign_queue(inbox_id: int | None = None) -> int:
    """Give queued conversations to online attendants with room (one inbox, or all)."""
    return len(services.assign_queue(inbox_id))


@shared_task(name="handoffs.tasks.return_from_offline", acks_late=False, ignore_result=True)
def return_from_offline() -> int:
    """Unanswered conversations of attendants gone offline or away past the grace: back to the queue."""
    return len(services.return_from_offline())
