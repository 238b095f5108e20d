"""The demo business's approved message templates, as Meta lists them (Graph API
``GET /<waba_id>/message_templates``): the console syncs them through the stand-in, and the
phone renders a template it receives from them."""

from __future__ import annotations

import re
from typing import Any

TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "900000000000001",
        "name": "retomar_atendimento",
        "language": "pt_BR",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": (
                    "Olá, {{1}}! Ainda podemos ajudar com o seu atendimento? Responda esta mensagem para continuar."
                ),
                "example": {"body_text": [["Maria"]]},
            }
        ],
    },
    {
        "id": "900000000000002",
        "name": "lembrete_agendamento",
        "language": "pt_BR",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Olá, {{1}}! Lembrete: seu horário é {{2}}. Podemos confirmar?",
                "example": {"body_text": [["Maria", "quinta-feira às 9h30"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [{"type": "QUICK_REPLY", "text": "Confirmar"}, {"type": "QUICK_REPLY", "text": "Remarcar"}],
            },
        ],
    },
    {
        "id": "900000000000003",
        "name": "pedido_enviado",
        "language": "pt_BR",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Pedido a caminho"},
            {
                "type": "BODY",
                "text": "Oi, {{1}}! Seu pedido {{2}} saiu para entrega e chega até as {{3}}.",
                "example": {"body_text": [["Carlos", "#1234", "18h"]]},
            },
        ],
    },
]

_PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")


def find(name: str, language: str = "") -> dict[str, Any] | None:
    for template in TEMPLATES:
        if template["name"] == name and (not language or template["language"] == language):
            return template
    return None


def render(body: dict[str, Any]) -> tuple[str, list[str]]:
    """A sent template's text (body with its parameters filled in) and its quick-reply buttons."""
    template = find(str(body.get("name") or ""), str((body.get("language") or {}).get("code") or ""))
    if template is None:
        return str(body.get("name") or ""), []
    params: list[str] = []
    for component in body.get("components") or []:
        if isinstance(component, dict) and component.get("type") == "body":
            params = [str(p.get("text", "")) for p in component.get("parameters") or [] if isinstance(p, dict)]
    parts, buttons = [], []
    for component in template["components"]:
        if component["type"] in ("HEADER", "BODY") and component.get("text"):
            text = _PLACEHOLDER.sub(
                lambda m: params[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(params) else m.group(0),
                component["text"],
            )
            parts.append(text)
        if component["type"] == "BUTTONS":
            buttons = [b["text"] for b in component["buttons"] if b.get("type") == "QUICK_REPLY"]
    return "\n".join(parts), buttons
