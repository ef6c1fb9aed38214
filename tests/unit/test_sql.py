"""SQL lives in sql/queries, one file per module that runs it, and nowhere in the Python."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from notifier.db import SQL_DIR, parse_queries

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("notifier", "workers")
# Tooling that is not part of the product, and so not bound by its rules.
TOOLING = ("notifier/tooling/",)
# Queries run by a module other than the one their file is named after: query name ->
# {module: why it may}. Keep it short; a second user usually means a missing service function.
SHARED: dict[str, dict[str, str]] = {}
# A string that starts like a statement is SQL outside sql/queries.
_STATEMENT = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|MERGE|COPY|CREATE|ALTER|DROP|TRUNCATE|ANALYZE"
    r"|VACUUM|SET|RESET|LOCK|GRANT|REVOKE|EXPLAIN|CALL|DO|VALUES|TABLE|LISTEN|NOTIFY)\s"
)


def _modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            found[name] = ast.parse(path.read_text(encoding="utf-8"), name)
    return found


def _product(module: str) -> bool:
    return not module.startswith(TOOLING)


def _query_files() -> dict[str, str]:
    """Query name -> the stem of the file it is defined in."""
    return {
        name: path.stem
        for path in sorted((SQL_DIR / "queries").glob("*.sql"))
        for name, _ in parse_queries(path.read_text(encoding="utf-8"))
    }


def _uses() -> dict[str, set[str]]:
    """Query name -> the modules that look it up as queries["name"]."""
    uses: dict[str, set[str]] = defaultdict(set)
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and isinstance(node.value, ast.Name)
                and node.value.id == "queries"
            ):
                key = node.slice
                assert isinstance(key, ast.Constant) and isinstance(key.value, str), (
                    f"{module}:{node.lineno}: queries[…] is looked up by a literal name"
                )
                uses[key.value].add(module)
    return uses


def test_every_query_looked_up_exists() -> None:
    files = _query_files()
    missing = {name: sorted(mods) for name, mods in _uses().items() if name not in files}
    assert missing == {}


def test_every_query_is_used() -> None:
    assert sorted(set(_query_files()) - set(_uses())) == []


def test_each_query_file_serves_the_module_named_like_it() -> None:
    files = _query_files()
    stems = {Path(m).stem for m in _modules()}
    assert sorted(set(files.values()) - stems) == []
    strays = {}
    for name, modules in _uses().items():
        stem = files.get(name)
        for module in modules:
            if Path(module).stem != stem and module not in SHARED.get(name, {}):
                strays[name] = f"{module} uses a query of {stem}.sql"
    assert strays == {}


def test_shared_exceptions_are_still_needed() -> None:
    uses = _uses()
    stale = {name: sorted(set(others) - uses.get(name, set())) for name, others in SHARED.items()}
    assert {name: mods for name, mods in stale.items() if mods} == {}


def test_no_sql_inline_in_python() -> None:
    inline = []
    for module, tree in _modules().items():
        if not _product(module):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _STATEMENT.match(node.value)
            ):
                inline.append(f"{module}:{node.lineno}: {node.value[:40]!r}")
    assert inline == []
