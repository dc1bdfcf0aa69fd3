"""What a user installs: the distribution's name, metadata, extras, license, version, README.

paygate is published as ``paygate-payments`` (``paygate`` on PyPI is someone else's
project); the import package is ``paygate``.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import paygate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
DIST = "paygate-payments"
#: extras that are not runtime features of the library (left out of ``all`` on purpose)
NOT_RUNTIME = {"all", "examples"}


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return data


def _extras_of(requirement: str) -> set[str]:
    match = re.fullmatch(r"([A-Za-z0-9._-]+)\[([^\]]*)\]", requirement.strip())
    assert match, requirement
    return {part.strip() for part in match.group(2).split(",")}


# -- install hints ---------------------------------------------------------------------------

#: the old install forms: `pip install paygate` (not `paygate-payments`), 'paygate[...]',
#: "paygate[...]" and `paygate[...]`
_OLD_HINT = re.compile(r"pip install paygate(?![-\w])|['\"`]paygate\[")


def _old_hints(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if _OLD_HINT.search(line)]


def test_no_install_hint_names_the_old_distribution() -> None:
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for folder, pattern in (("src", "*.py"), ("docs", "*.md"), ("examples", "*")):
        files += [p for p in (ROOT / folder).rglob(pattern) if p.is_file()]
    found = []
    for path in files:
        if path.suffix in {".py", ".md", ".toml", ".txt", ".html", ".cfg", ""}:
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(ROOT)}: {line}" for line in _old_hints(text)]
    assert found == []


@pytest.mark.parametrize(
    ("line", "old"),
    [
        ("pip install paygate", True),
        ("pip install paygate django", True),
        ("pip install 'paygate[stripe]'", True),
        ('all = ["paygate[stripe,paypal]"]', True),
        ("Extras: `paygate[postgres]`", True),
        ("pip install paygate-payments django", False),
        ("pip install 'paygate-payments[stripe]'", False),
        ("import paygate", False),
    ],
)
def test_the_hint_check_sees_the_old_forms(line: str, old: bool) -> None:
    assert bool(_old_hints(line)) is old


def test_a_missing_sdk_names_the_new_distribution() -> None:
    from paygate.provider import ProviderSpec, _registry, load_provider_class

    _registry["_dist_probe"] = ProviderSpec(
        "_no_such_module_for_paygate:X", "stripe", ("_no_such_module_for_paygate",)
    )
    try:
        with pytest.raises(paygate.ProviderNotInstalled) as info:
            load_provider_class("_dist_probe")
    finally:
        del _registry["_dist_probe"]
    assert f"pip install '{DIST}[stripe]'" in str(info.value)


# -- metadata --------------------------------------------------------------------------------


def test_the_distribution_name_and_the_import_name(project: dict[str, Any]) -> None:
    assert project["project"]["name"] == DIST
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/paygate"]


def test_license_file_matches_the_declared_license(project: dict[str, Any]) -> None:
    meta = project["project"]
    assert meta["license"] == "MIT"
    assert meta["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 paygate developers" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def test_urls_and_python_classifiers(project: dict[str, Any]) -> None:
    meta = project["project"]
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(
        meta["urls"]
    )
    assert all(url.startswith("https://") for url in meta["urls"].values())
    minor = re.fullmatch(r">=3\.(\d+)", meta["requires-python"])
    assert minor
    versions = {
        c.rpartition(" :: ")[2]
        for c in meta["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert versions == {f"3.{n}" for n in range(int(minor.group(1)), 14)}


def test_all_holds_every_runtime_extra(project: dict[str, Any]) -> None:
    extras = project["project"]["optional-dependencies"]
    (requirement,) = extras["all"]
    assert requirement.startswith(f"{DIST}[")
    assert _extras_of(requirement) == set(extras) - NOT_RUNTIME


def test_tools_are_dependency_groups_not_extras(project: dict[str, Any]) -> None:
    extras = project["project"]["optional-dependencies"]
    groups = project["dependency-groups"]
    assert not {"dev", "test", "docs", "bench"} & set(extras)
    assert {"dev", "test", "docs", "bench", "package"} <= set(groups)
    assert {"include-group": "test"} in groups["dev"]
    # httpx2 is a test tool (Starlette's TestClient transport), not something users need
    assert not [r for reqs in extras.values() for r in reqs if r.startswith("httpx2")]
    assert [r for r in groups["test"] if isinstance(r, str) and r.startswith("httpx2")]


# -- one version -----------------------------------------------------------------------------


def test_the_version_is_written_once(project: dict[str, Any]) -> None:
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/paygate/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", paygate.__version__)


def test_the_installed_metadata_has_that_version() -> None:
    try:
        installed = metadata.version(DIST)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{DIST} is not installed here (pip install -e .)")
    assert installed == paygate.__version__


# -- README on an index page -----------------------------------------------------------------


def test_readme_links_work_on_an_index_page() -> None:
    """PyPI shows the README without the repository around it: a relative link is dead."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, re.M)
    assert targets
    relative = [t for t in targets if not re.match(r"https?://|#|mailto:", t)]
    assert relative == []
