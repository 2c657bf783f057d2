"""A newcomer's terminal: `flask --app wsgi kco …` says one line when it migrates, the
development-key warning once, and the servers scripts/run.sh starts do not fight over gunicorn's
control socket."""
from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest

import config
from callbacks import create_app
from callbacks.store import migrate

from .servers import ROOT, gunicorn

SECRETS = {"KCO_CALLBACK_SECRET": "s" * 40, "KCO_API_KEY": "k" * 40}


def flask(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("KCO_", "KLARNA_", "DATABASE_URL", "FLASK_"))}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "kco", *args],
                          cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_help_says_nothing_but_the_one_migration_line(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}", **SECRETS}
    first = flask("--help", env=env)
    assert first.returncode == 0, first.stderr
    assert len(lines(first.stderr)) == 1, first.stderr
    assert "migrated from an empty schema to revision" in first.stderr
    assert "alembic" not in first.stderr
    again = flask("--help", env=env)
    assert again.returncode == 0 and lines(again.stderr) == []
    assert "flask kco [OPTIONS] COMMAND" in again.stdout


def test_migrate_answers_in_exactly_one_line(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}", **SECRETS}
    fresh = flask("migrate", env=env)
    assert fresh.returncode == 0
    assert len(lines(fresh.stdout + fresh.stderr)) == 1, fresh.stdout + fresh.stderr
    assert "migrated from an empty schema to revision" in fresh.stderr
    current = flask("migrate", env=env)
    assert lines(current.stderr) == []
    assert lines(current.stdout) == [f"database sqlite:///{tmp_path / 'kco.sqlite3'} is at "
                                     f"revision {migrate.HEAD}: nothing to migrate"]


def test_development_keys_are_warned_about_in_one_line(tmp_path):
    result = flask("--help", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}"})
    warned = [line for line in lines(result.stderr) if "development key" in line]
    assert warned == ["KCO_CALLBACK_SECRET and KCO_API_KEY are not set: using the development "
                      "keys (never in production)"]


def test_the_development_key_warning_comes_once_per_process(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(config, "_warned", set())
    for name in ("KCO_CALLBACK_SECRET", "KCO_API_KEY", "KCO_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'kco.sqlite3'}")
    with caplog.at_level(logging.WARNING, logger="config"):
        apps = [create_app() for _ in range(3)]
    try:
        assert [r.getMessage() for r in caplog.records if r.name == "config"] == [
            "KCO_CALLBACK_SECRET and KCO_API_KEY are not set: using the development keys "
            "(never in production)"]
        assert all(a.config["KCO_CALLBACK_SECRET"] == config.DEV_CALLBACK_SECRET for a in apps)
    finally:
        for app in apps:
            app.extensions["kco"].store.dispose()


def _sockets(directory) -> list:
    return [p for p in directory.rglob("*") if stat.S_ISSOCK(p.lstat().st_mode)]


@pytest.mark.timeout(120)
def test_servers_started_together_open_no_shared_control_socket(tmp_path):
    """gunicorn 25+ puts a `gunicornc` socket at one per-user path; two servers (the service and
    the sandbox of scripts/run.sh) would unlink each other's. Off by default, per path when asked."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}", **SECRETS}
    with gunicorn(env, workers=1, threads=2), gunicorn(env, app="sandbox_wsgi:app", workers=1,
                                                        threads=2):
        assert _sockets(home) == [] and _sockets(runtime) == []
    wanted = tmp_path / "service.ctl"
    with gunicorn({**env, "GUNICORN_CONTROL_SOCKET": str(wanted)}, workers=1, threads=2):
        assert stat.S_ISSOCK(wanted.lstat().st_mode)
        assert _sockets(home) == [] and _sockets(runtime) == []
