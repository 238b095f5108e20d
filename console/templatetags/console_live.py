"""``{% presence_control %}``: the presence control of the console frame's user menu."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("console/live.html#presence-control", takes_context=True)
def presence_control(context: Any) -> dict[str, Any]:
    from console.presence import control_context

    request = context["request"]
    return {**control_context(request.user), "request": request, "csrf_token": context.get("csrf_token")}
