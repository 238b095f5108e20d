"""Pre-generate signed webhook bodies: one per line, ``<X-Hub-Signature-256>\\t<body>``.

Each body is a Meta-shaped text message with a message id never used before, signed with
HMAC-SHA256 of the exact bytes sent. Signing happens here, before the clock starts, so the
load generators only copy bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from pathlib import Path

TEXTS = [
    "Olá, boa tarde! Gostaria de saber o status do meu pedido 48213.",
    "Vocês entregam em Campinas? Qual o prazo?",
    "Quero trocar o tamanho da camiseta, comprei M e preciso de G.",
    "O boleto venceu ontem, consigo pagar ainda?",
    "Bom dia! Preciso falar com um atendente, por favor.",
    "Obrigado pela ajuda 🙏",
]


def body_for(*, tag: str, index: int, phone_number_id: str, display_number: str, waba_id: str) -> bytes:
    customer = 5511900000000 + index % 997
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": display_number, "phone_number_id": phone_number_id},
                            "contacts": [{"profile": {"name": f"Cliente {customer % 1000}"}, "wa_id": str(customer)}],
                            "messages": [
                                {
                                    "from": str(customer),
                                    "id": f"wamid.BENCH-{tag}-{index:08d}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": TEXTS[index % len(TEXTS)]},
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    # Meta sends non-ASCII as \\u escapes; ensure_ascii gives the same bytes on the wire.
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def write(path: Path, *, tag: str, count: int, secret: str, phone_number_id: str, display: str, waba: str) -> None:
    with path.open("wb") as out:
        for index in range(count):
            body = body_for(tag=tag, index=index, phone_number_id=phone_number_id, display_number=display, waba_id=waba)
            out.write(sign(body, secret).encode() + b"\t" + body + b"\n")


def read(path: Path) -> list[tuple[str, bytes]]:
    rows = []
    with path.open("rb") as lines:
        for line in lines:
            header, _, body = line.rstrip(b"\n").partition(b"\t")
            rows.append((header.decode(), body))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tag", required=True, help="unique per phase; part of every message id")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--phone-number-id", required=True)
    parser.add_argument("--display-number", default="15550000000")
    parser.add_argument("--waba-id", default="100000000000000")
    args = parser.parse_args()
    write(
        args.out,
        tag=args.tag,
        count=args.count,
        secret=args.secret,
        phone_number_id=args.phone_number_id,
        display=args.display_number,
        waba=args.waba_id,
    )


if __name__ == "__main__":
    main()
