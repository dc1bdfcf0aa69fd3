"""Past crashers, kept as JSON files in tests/fuzz_corpus/ and replayed by the test suite.

A case file::

    {"target": "stripe", "note": "what it once broke",
     "body": {"text": "..."} | {"b64": "..."} | {"parts": [["[", 100000], ["]", 100000]]},
     "sign": true,                       # sign the body as the target's provider would
     "bytes_headers": false,             # then turn the signed headers into bytes
     "headers": [[name, value], ...]}    # laid over the signed headers (exact if unsigned)

Header names and values are tagged so that bytes, lone surrogates and non-text survive
JSON: ``{"text": "..."}``, ``{"b64": "..."}`` or ``{"json": <any JSON value>}``; a value of
``{"drop": true}`` removes that signed header.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from tests.fuzz.targets import target

CORPUS_DIR = Path(__file__).resolve().parent.parent / "fuzz_corpus"

_DROP = object()


def _tag(value: Any) -> dict[str, Any]:
    if isinstance(value, (bytes, bytearray)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, str):
        return {"text": value}
    return {"json": value}


def _untag(tagged: dict[str, Any]) -> Any:
    if "b64" in tagged:
        return base64.b64decode(tagged["b64"])
    if "text" in tagged:
        return tagged["text"]
    if tagged.get("drop"):
        return _DROP
    return tagged["json"]


def _body(spec: dict[str, Any]) -> bytes:
    if "parts" in spec:
        return b"".join(part.encode("utf-8") * times for part, times in spec["parts"])
    value = _untag(spec)
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)


def load_case(path: Path) -> tuple[str, bytes, dict[Any, Any], str]:
    """(target name, body, headers, note) of a case file."""
    case = json.loads(path.read_text(encoding="utf-8"))
    name: str = case["target"]
    body = _body(case["body"])
    headers: dict[Any, Any] = dict(target(name).sign(body)) if case.get("sign") else {}
    if case.get("bytes_headers"):  # as an ASGI server hands them over
        headers = {k.encode("latin-1"): v.encode("latin-1") for k, v in headers.items()}
    for raw_name, raw_value in case.get("headers", []):
        header, value = _untag(raw_name), _untag(raw_value)
        if value is _DROP:
            headers.pop(header, None)
        else:
            headers[header] = value
    return name, body, headers, str(case.get("note", ""))


def save_case(name: str, body: bytes, headers: Any, note: str) -> Path:
    """Keep a crasher (exact body and headers) as a new case file; returns its path."""
    pairs = [[_tag(k), _tag(v)] for k, v in dict(headers).items()]
    case = {"target": name, "note": note, "body": _tag(body), "sign": False, "headers": pairs}
    text = json.dumps(case, indent=1, sort_keys=True)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    CORPUS_DIR.mkdir(exist_ok=True)
    path = CORPUS_DIR / f"{name}-{digest}.json"
    path.write_text(text + "\n", encoding="utf-8")
    return path
