"""A new user's first hour, as a test: each step is the docs' own text, run as a user runs it.

1. Install: the README's ``pip install`` lines name this project's distribution and extras
   that exist, and that distribution is the one that provides ``import paygate``.
2. The README quickstart, saved as a file and run with ``python``.
3. The testing page's code, saved as test files and run with ``pytest`` (the fixtures come
   from paygate's pytest plugin, as for a user).
4. The Flask page: its "Run it" command starts the shop (``flask --app examples.flask_shop
   run``, the page's environment), which serves the catalogue and a checkout; then the
   page's app, built with ``create_app`` on the fake provider, takes a whole purchase.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from tests.docs_blocks import ROOT, python_blocks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DISTRIBUTION = PYPROJECT["project"]["name"]


def _env(tmp: Path) -> dict[str, str]:
    """A user's environment: this checkout importable, no store URL from the test suite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYGATE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["HOME"] = str(tmp)
    return env


def _fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def _shell_lines(block: str) -> list[str]:
    """A bash block's commands: comments dropped, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #", 1)[0].strip() for line in joined.splitlines() if line.strip()]


# -- 1. install ------------------------------------------------------------------------------


def test_1_the_install_lines_name_this_distribution() -> None:
    from packaging.requirements import Requirement

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    lines = [line for block in _fenced(install, "bash") for line in _shell_lines(block)]
    assert lines, "no install command in the README"
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    for line in lines:
        words = shlex.split(line)
        assert words[:2] == ["pip", "install"], line
        requirement = Requirement(words[2])
        assert requirement.name == DISTRIBUTION == "paygate-payments", line
        assert requirement.extras <= extras, line
    # the installed distribution of that name is the one that provides `import paygate`
    # (its version, its `paygate` command and pytest plugin; an editable install maps no
    # files, so packages_distributions() cannot tell)
    import paygate

    installed = metadata.distribution(DISTRIBUTION)
    assert installed.version == paygate.__version__
    entry_points = {(ep.group, ep.name, ep.value) for ep in installed.entry_points}
    assert ("console_scripts", "paygate", "paygate.__main__:main") in entry_points
    assert ("pytest11", "paygate", "paygate.testing.plugin") in entry_points


# -- 2. the quickstart ----------------------------------------------------------------------


def test_2_the_readme_quickstart_runs_as_a_script(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1]
    script = tmp_path / "quickstart.py"
    script.write_text(_fenced(quickstart, "python")[0], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["paid: ord_1", "succeeded", "partially_refunded"]


# -- 3. the testing page ---------------------------------------------------------------------


def test_3_the_testing_page_runs_under_pytest(tmp_path: Path) -> None:
    blocks = python_blocks(ROOT / "docs" / "testing.md")
    assert len(blocks) >= 4
    for number, block in enumerate(blocks):
        (tmp_path / f"test_docs_page_{number}.py").write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary)[1])  # type: ignore[index]
    assert passed >= 3 and "failed" not in summary and "error" not in summary, summary


# -- 4. the Flask page -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _running(command: list[str], env: dict[str, str], cwd: Path, port: int) -> Iterator[str]:
    server = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    pytest.fail(f"the shop did not start: {output[-2000:]}")
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_4_the_flask_page_run_command_serves_the_shop(tmp_path: Path) -> None:
    pytest.importorskip("flask")
    page = (ROOT / "docs" / "frameworks" / "flask.md").read_text(encoding="utf-8")
    run_it = page.split("## Run it", 1)[1].split("\n## ", 1)[0]
    install, command = _shell_lines(_fenced(run_it, "bash")[0])
    assert shlex.split(install)[:3] == ["pip", "install", DISTRIBUTION]
    words = shlex.split(command)
    env = _env(tmp_path)
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value  # the page's configuration: the fake provider, SQLite files
    assert words[:3] == ["flask", "--app", "examples.flask_shop"], command
    port = _free_port()
    argv = [sys.executable, "-m", *words, "--port", str(port)]
    with _running(argv, env, tmp_path, port) as base:
        with urllib.request.urlopen(base + "/", timeout=10) as catalogue:
            assert catalogue.status == 200
            assert 'name="sku"' in catalogue.read().decode()
        opener = urllib.request.build_opener(_NoRedirect)
        form = urllib.parse.urlencode({"sku": "tee", "quantity": "1"}).encode()
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(base + "/checkout", data=form, timeout=10)
        assert redirect.value.code == 303
        assert redirect.value.headers["Location"]  # the provider's hosted page
        redirect.value.close()
    # the stores the page's environment named, in the directory the shop was started in
    assert (tmp_path / "paygate.db").exists() and (tmp_path / "shop.db").exists()


def test_4_the_flask_page_app_takes_a_purchase(tmp_path: Path) -> None:
    pytest.importorskip("flask")
    from examples.flask_shop import create_app

    import paygate
    from paygate.providers.fake import FakeProvider

    fake = FakeProvider(seed=7)
    with paygate.connect(fake, store=f"sqlite:///{tmp_path / 'paygate.db'}") as gateway:
        client = create_app(gateway, db_path=tmp_path / "shop.db").test_client()
        checkout = client.post("/checkout", data={"sku": "tee", "quantity": "1"})
        assert checkout.status_code == 303
        session = fake.get_checkout_session(checkout.headers["Location"].rsplit("/", 1)[-1])
        assert session.order_id is not None
        fake.complete_checkout(session.id, payment_method="tok_visa")  # the customer pays
        for delivery in fake.take_webhooks():  # the provider's webhooks
            answer = client.post("/webhooks/paygate", data=delivery.body, headers=delivery.headers)
            assert answer.status_code == 200, answer.text
        order_page = client.get(f"/orders/{session.order_id}").text
        assert re.search(r'id="order-status">paid<', order_page), order_page
        assert re.search(r'id="payment-status">succeeded<', order_page)
