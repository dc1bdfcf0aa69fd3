"""Shell completion: ``paygate completion bash|zsh|fish`` and the answers behind it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from paygate.__main__ import COMMANDS, main

pytest.importorskip("argcomplete", reason="argcomplete is in the cli extra")

ROOT = Path(__file__).resolve().parent.parent


def complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell gets for TAB at the end of ``line``: the protocol argcomplete's
    shell code speaks with ``paygate`` (environment in, words out)."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_SHELL": "bash",
        "_ARGCOMPLETE_IFS": "\n",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
    }
    done = subprocess.run(
        [sys.executable, "-m", "paygate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return sorted(out.read_text(encoding="utf-8").split("\n"))


def test_subcommands_complete(tmp_path: Path) -> None:
    assert complete("paygate d", tmp_path) == ["db", "demo"]
    assert set(complete("paygate ", tmp_path)) >= set(COMMANDS)


def test_a_subcommand_s_own_commands_options_and_choices_complete(tmp_path: Path) -> None:
    assert {"upgrade", "version"} <= set(complete("paygate db ", tmp_path))
    assert {"list", "replay"} <= set(complete("paygate events ", tmp_path))
    assert complete("paygate reconcile --provider ", tmp_path) == sorted(
        ["stripe", "paypal", "square", "generic"]
    )
    assert [w.strip() for w in complete("paygate reconcile --pro", tmp_path)] == ["--provider"]
    assert {"bash", "zsh", "fish"} <= set(complete("paygate completion ", tmp_path))


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nospace -o default -o bashdefault -F"), ("zsh", "#compdef paygate"),
     ("fish", "complete --command paygate")],
)  # fmt: skip
def test_the_script_for_each_shell(
    shell: str, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script
    assert "paygate" in script


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["completion", "powershell"])
    assert exit_.value.code == 2
    assert "invalid choice: 'powershell'" in capsys.readouterr().err


def test_without_argcomplete_the_command_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "argcomplete", None)
    monkeypatch.setitem(sys.modules, "argcomplete.shell_integration", None)
    assert main(["completion", "bash"]) == 1
    assert "pip install 'paygate-payments[cli]'" in capsys.readouterr().err


def test_an_ordinary_run_is_not_a_completion(capsys: pytest.CaptureFixture[str]) -> None:
    """Without argcomplete's environment, main() runs the command as always."""
    assert "_ARGCOMPLETE" not in os.environ
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("paygate ")
