"""Coverage-guided fuzzing of one provider's ``parse_webhook`` with atheris (libFuzzer).

    PYTHONPATH=src:. python fuzz/atheris_webhooks.py stripe -max_total_time=60

Targets: stripe, paypal, paypal_api, square, fake (see tests/fuzz/targets.py). The first
byte of an input picks the mode, as in the hypothesis suite: 0 a signed raw body, 1 a
genuine body under hostile signature headers, 2 a valid event with fields replaced by
fuzzed JSON, re-signed. Only a documented paygate error may escape (``check_parse``);
anything else is a crash libFuzzer reports and saves. ``nox -s fuzz`` runs this where
atheris is installed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["paygate"]):
    from tests.fuzz.strategies import check_parse
    from tests.fuzz.targets import NAMES, paypal_api, target


def _value(fdp: Any) -> Any:
    kind = fdp.ConsumeIntInRange(0, 6)
    if kind == 0:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 16))
    if kind == 1:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 64))
    if kind == 2:
        return fdp.ConsumeRegularFloat()
    if kind == 3:
        return None
    if kind == 4:
        return [_value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 5:
        return {fdp.ConsumeUnicode(8): _value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))}
    return fdp.ConsumeBool()


def _mutate(fdp: Any, event: Any) -> Any:
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        parent, key, node = None, None, event
        while isinstance(node, (dict, list)) and node and fdp.ConsumeBool():
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]
            node = node[key]
        if parent is not None:
            if fdp.ConsumeBool():
                parent[key] = _value(fdp)
            else:
                del parent[key]
    return event


def main() -> None:
    name = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in NAMES else "fake"
    fuzzed = target(name)
    seeds = [json.dumps(seed) for seed in fuzzed.seeds]

    def one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        mode = fdp.ConsumeIntInRange(0, 2)
        if mode == 0:
            body = fdp.ConsumeBytes(fdp.remaining_bytes())
            check_parse(fuzzed, "atheris-raw", body, fuzzed.sign(body))
            return
        seed = json.loads(seeds[fdp.ConsumeIntInRange(0, len(seeds) - 1)])
        if mode == 1:
            body = json.dumps(seed).encode()
            headers: dict[Any, Any] = dict(fuzzed.sign(body))
            for header in fuzzed.signature_headers:
                if fdp.ConsumeBool():
                    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 128))
                    text = raw.decode("utf-8", "surrogateescape")  # lone surrogates too
                    headers[header] = raw if fdp.ConsumeBool() else text
            check_parse(fuzzed, "atheris-headers", body, headers)
            return
        body = json.dumps(_mutate(fdp, seed)).encode()
        check_parse(fuzzed, "atheris-mutate", body, fuzzed.sign(body))

    with paypal_api():
        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
