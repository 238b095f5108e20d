from __future__ import annotations

from django import template

from conversations.models import Alert

register = template.Library()


@register.simple_tag
def open_alert_count() -> int:
    """Shown in the admin header so a paused inbox or an expired token is never missed."""
    return Alert.objects.filter(resolved__isnull=True).count()
