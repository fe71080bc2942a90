"""Load the service-hook bodies stored in tests/payloads/, one file per case.

A file is named `<event type>.<case>.json`, for example `git.push.tag.json`. The `name` argument
is the file name without `.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PAYLOAD_DIR = Path(__file__).parent / "payloads"


def load_payload(name: str) -> bytes:
    """Return the bytes of `tests/payloads/<name>.json` as Azure DevOps would send them."""
    path = PAYLOAD_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"Payload file {path} not found. The known names are {payload_names()}")
    return path.read_bytes()


def load_payload_json(name: str) -> dict[str, Any]:
    """Return the decoded body of `tests/payloads/<name>.json` as a new dict on each call."""
    document = json.loads(load_payload(name))
    assert isinstance(document, dict), f"payload {name} is not a JSON object"
    return document


def payload_names(prefix: str = "") -> list[str]:
    """List the payload names that start with `prefix`, sorted."""
    names = (path.name.removesuffix(".json") for path in PAYLOAD_DIR.glob("*.json"))
    return sorted(name for name in names if name.startswith(prefix))
