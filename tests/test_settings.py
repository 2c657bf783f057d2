"""One settings table: every environment variable the service, the sandbox, gunicorn, the
scripts and the tests read is declared in settings.py, and docs/configuration.md is that
declaration printed, so code, table and docs cannot drift apart."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import settings
from config import Config

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "instance", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis"}
# A read (or a write, which a later read sees) of one named variable, in Python or wrk's Lua;
# `envvar=` is a click option that falls back to the environment.
PY_READS = re.compile(r"""(?:os\.environ(?:\.get|\.setdefault|\.pop)?\s*[\[(]\s*|os\.getenv\(\s*|"""
                      r"""settings\.(?:raw|text|declared)\(\s*|whole_number\(\s*|(?<![\w.])_env\(\s*|"""
                      r"""monkeypatch\.(?:setenv|delenv)\(\s*|\.setenv\(\s*|envvar=\s*)["']([A-Za-z_][A-Za-z0-9_]*)["']""")
# A read whose name is not a literal: only where the names come from a declared list.
PY_DYNAMIC = re.compile(r"""os\.environ(?:\.get)?\s*[\[(]\s*(?!["'])|os\.getenv\(\s*(?!["'])""")
DYNAMIC_OK = {"settings.py": "reads the declared names", "sandbox/__init__.py": "reads sandbox.ENVIRONMENT",
              "callbacks/klarna/accounts.py": "reads the shop file's password_env names (the merchant's own)"}
SH_REF = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)")
SH_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", re.M)
# Set by the shell or the system, not by whoever runs the service.
SH_BUILTIN = {"HOME", "PATH", "UID", "EUID", "PWD", "OLDPWD", "RANDOM", "SECONDS", "BASH_SOURCE", "LINENO"}


def _files(*suffixes: str):
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if SKIP & set(rel.parts) or not path.is_file():
            continue
        if path.suffix in suffixes or rel.as_posix() in {".ci/run", "Procfile"} and ".sh" in suffixes:
            yield rel.as_posix(), path.read_text(encoding="utf-8", errors="replace")


def python_reads() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rel, text in _files(".py"):
        for name in PY_READS.findall(text):
            found.setdefault(name, set()).add(rel)
    return found


def shell_reads() -> dict[str, set[str]]:
    """Names a script takes from its environment: referenced, and not only assigned locally
    (`export PORT=${PORT:-8000}` reads PORT; `SANDBOX_URL="…"` is the script's own)."""
    found: dict[str, set[str]] = {}
    for rel, text in _files(".sh"):
        local = {name for name, value in SH_ASSIGN.findall(text) if not re.search(rf"\${{?{name}\b", value)}
        for name in set(SH_REF.findall(text)) - local - SH_BUILTIN:
            found.setdefault(name, set()).add(rel)
    return found


def test_the_scan_finds_the_reads_it_is_meant_to():
    """The scan itself: a regex that matched nothing would pass the test below forever."""
    py, sh = python_reads(), shell_reads()
    assert {"KCO_CALLBACK_SECRET", "KCO_DB_POOL_SIZE", "GUNICORN_THREADS", "KCO_TEST_PG_DATABASE",
            "PROMETHEUS_MULTIPROC_DIR", "BENCH_START", "KCO_WORKER_METRICS_PORT"} <= set(py)
    assert {"PORT", "SANDBOX_PORT", "KLARNA_API_URL", "WEB_CONCURRENCY", "KCO_TEST_WORKERS"} <= set(sh)
    assert "SANDBOX_URL" not in sh  # assigned by scripts/run.sh itself


def test_no_code_reads_an_undeclared_variable():
    reads = python_reads()
    for name, places in shell_reads().items():
        reads.setdefault(name, set()).update(places)
    undeclared = {name: sorted(places) for name, places in reads.items() if name not in settings.BY_NAME}
    assert not undeclared, f"declare these in settings.py (name, kind, default, meaning): {undeclared}"


def test_variable_names_are_read_only_where_the_names_are_declared():
    dynamic = sorted(rel for rel, text in _files(".py") if PY_DYNAMIC.search(text) and rel not in DYNAMIC_OK)
    assert not dynamic, f"these read os.environ with a computed name: read a declared one instead: {dynamic}"


def test_every_declared_variable_is_read_somewhere():
    """A declaration nothing reads is a setting the docs promise and the code ignores."""
    import sandbox

    reads = set(python_reads()) | set(shell_reads()) | set(sandbox.ENVIRONMENT)
    assert sorted(set(settings.BY_NAME) - reads) == []


def test_the_sandbox_reads_declared_sandbox_settings_with_their_declared_defaults():
    import sandbox

    for name in sandbox.ENVIRONMENT:
        setting = settings.declared(name)
        assert setting.read_by == "sandbox", name
        default = sandbox.DEFAULTS[name]
        if setting.default is None:
            assert default is None, name
        else:
            assert type(default)(setting.default) == default, name


def test_the_service_uses_the_declared_defaults(monkeypatch):
    for setting in settings.SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)
    config = Config()
    for name in ("KCO_PUBLIC_URL", "KLARNA_API_URL", "KLARNA_USERNAME", "KLARNA_PASSWORD", "KLARNA_TIMEOUT"):
        assert getattr(config, name) == settings.declared(name).default, name
    for name in ("KLARNA_RETRIES", "KCO_WORK_SLOTS"):
        assert getattr(config, name) == int(settings.declared(name).default), name
    from config import whole_number
    assert whole_number("KCO_DB_POOL_SIZE") == 10 and whole_number("KCO_DB_MAX_OVERFLOW") == 30


def test_an_undeclared_name_is_refused_when_read():
    undeclared = "_".join(("KCO", "NOT", "DECLARED"))  # built: the scan would flag a literal
    with pytest.raises(LookupError, match="settings.py"):
        settings.raw(undeclared)


def test_docs_configuration_md_is_the_declaration_printed():
    written = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == settings.markdown(), (
        "docs/configuration.md is out of date: `flask --app wsgi kco settings --markdown > docs/configuration.md`")
    for setting in settings.SETTINGS:
        assert f"| `{setting.name}` |" in written


def test_the_settings_command_prints_the_same_markdown(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "kco", "settings", "--markdown"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == settings.markdown()


@pytest.mark.parametrize("doc", ["README.md", "docs/design.md"])
def test_other_docs_point_at_the_table_instead_of_keeping_their_own(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert "configuration.md" in text
    rows = [line for line in text.splitlines() if re.match(r"\|\s*`(KCO|KLARNA)_[A-Z_]+`", line)]
    assert rows == [], f"{doc} keeps its own settings table: {rows[:3]}"
