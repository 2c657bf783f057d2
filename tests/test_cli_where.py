"""Commands in a second terminal find what ./scripts/run.sh started in the first
(callbacks/cli/where.py): flags, then the environment, then run.sh's run file, then the defaults."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from callbacks.cli import where

from .servers import ROOT, free_port
from .waiting import until

SAMPLES = ROOT / "samples"
PLACES = ("KCO_PUBLIC_URL", "KLARNA_API_URL", "PORT", "SANDBOX_PORT")


@pytest.fixture
def fresh_terminal(monkeypatch, tmp_path):
    """No address in the environment, a run file under tmp_path, nothing settled yet."""
    for name in PLACES:
        # setenv first, so that monkeypatch remembers the variable as unset and removes what
        # settle_environment() writes into os.environ; delenv alone records nothing when the
        # variable was unset, and the address leaked into every later test of the process
        # (test_headers' CSP then named that address instead of the sandbox's).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    path = tmp_path / "run.json"
    monkeypatch.setenv("KCO_RUN_FILE", str(path))
    monkeypatch.setattr(where, "settled", {})
    return path


def run_record(pid: int, port: int = 18000, sandbox: int | None = 18001) -> dict:
    return {"url": f"http://127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
            "klarna_api_url": f"http://127.0.0.1:{sandbox or 9}", "pid": pid,
            "sandbox_url": f"http://127.0.0.1:{sandbox}" if sandbox else None}


def test_the_running_run_sh_file_fills_in_what_the_environment_does_not_say(fresh_terminal):
    where.write(fresh_terminal, run_record(os.getpid()))
    assert where.settle_environment() == {"KCO_PUBLIC_URL": "http://127.0.0.1:18000",
                                          "KLARNA_API_URL": "http://127.0.0.1:18001"}
    assert os.environ["KCO_PUBLIC_URL"] == "http://127.0.0.1:18000"
    place = where.locate({"KLARNA_API_URL": os.environ["KLARNA_API_URL"]}, "KLARNA_API_URL", "--sandbox-url")
    assert place.url == "http://127.0.0.1:18001" and place.source.endswith("run.json")


def test_the_environment_wins_over_the_run_file_and_ports_as_run_sh_reads_them(fresh_terminal, monkeypatch):
    where.write(fresh_terminal, run_record(os.getpid()))
    monkeypatch.setenv("KCO_PUBLIC_URL", "https://shop.example")
    monkeypatch.setenv("SANDBOX_PORT", "19001")
    assert where.settle_environment() == {"KLARNA_API_URL": "http://127.0.0.1:19001"}
    assert os.environ["KCO_PUBLIC_URL"] == "https://shop.example"
    assert where.settled == {"KLARNA_API_URL": "SANDBOX_PORT"}
    monkeypatch.setenv("PORT", "19000")
    monkeypatch.delenv("KCO_PUBLIC_URL")
    where.settle_environment()
    assert os.environ["KCO_PUBLIC_URL"] == "http://127.0.0.1:19000"


def test_a_flag_wins_over_everything():
    place = where.locate({"KCO_PUBLIC_URL": "http://127.0.0.1:8000"}, "KCO_PUBLIC_URL", "--url",
                         "http://127.0.0.1:18000/")
    assert (place.url, place.source) == ("http://127.0.0.1:18000", "--url")


def test_the_file_of_a_run_sh_that_is_gone_is_ignored(fresh_terminal):
    """killed before its trap could remove the file: its ports are dead, so are its addresses."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    where.write(fresh_terminal, run_record(gone.pid))
    assert where.read_run_file() == {}
    assert where.settle_environment() == {}
    fresh_terminal.write_text("{half a file")
    assert where.read_run_file() == {}


def test_without_a_run_file_the_defaults_hold(fresh_terminal):
    assert where.settle_environment() == {}
    place = where.locate({"KCO_PUBLIC_URL": "http://127.0.0.1:8000"}, "KCO_PUBLIC_URL", "--url")
    assert (place.url, place.source) == ("http://127.0.0.1:8000", "the default")


def test_run_sh_removes_only_its_own_file(fresh_terminal):
    where.write(fresh_terminal, run_record(os.getpid()))
    where.main(["remove", "--pid", str(os.getpid() + 1)])
    assert fresh_terminal.exists()  # another run.sh's
    where.main(["remove", "--pid", str(os.getpid())])
    assert not fresh_terminal.exists()


def _terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PLACES}
    return {**env, **extra}


@pytest.mark.timeout(600)
def test_the_readme_commands_work_after_run_sh_on_other_ports(tmp_path):
    """The README's two commands, as a newcomer types them: `PORT=… SANDBOX_PORT=…
    ./scripts/run.sh` in one terminal, then `kco demo` and `kco replay samples/` in another,
    whose environment names none of the addresses."""
    port, sandbox_port = free_port(), free_port()
    run_file = tmp_path / "run.json"
    common = {"KCO_RUN_FILE": str(run_file), "DATABASE_URL": f"sqlite:///{tmp_path / 'kco.sqlite3'}"}
    run_sh = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, start_new_session=True,
                              env=_terminal_env(PORT=str(port), SANDBOX_PORT=str(sandbox_port), **common),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def up() -> bool:
        assert run_sh.poll() is None, f"run.sh exited: {run_sh.stdout.read() if run_sh.stdout else ''}"
        if not run_file.exists():
            return False
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok and \
                requests.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/orders", timeout=5).ok
        except requests.RequestException:
            return False

    try:
        until(up, "run.sh's service, sandbox and run file", timeout=180)
        assert json.loads(run_file.read_text())["sandbox_url"] == f"http://127.0.0.1:{sandbox_port}"
        terminal = _terminal_env(**common)
        flask = [sys.executable, "-m", "flask", "--app", "wsgi", "kco"]
        demo = subprocess.run([*flask, "demo"], cwd=ROOT, env=terminal, capture_output=True,
                              text=True, timeout=240)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert f"service http://127.0.0.1:{port}, sandbox http://127.0.0.1:{sandbox_port}" in demo.stdout
        assert "One full scripted checkout took" in demo.stdout
        found = subprocess.run([*flask, "where", "service"], cwd=ROOT, env=terminal, capture_output=True,
                               text=True, timeout=120)
        assert found.stdout == f"http://127.0.0.1:{port}\n", found.stderr
        files = sorted(SAMPLES.glob("*.json"))
        for extra in ([], ["--url"]):  # in-process, then over HTTP to the running service
            replay = subprocess.run([*flask, "replay", "samples/", *extra], cwd=ROOT, env=terminal,
                                    capture_output=True, text=True, timeout=240)
            assert replay.returncode == 0, replay.stdout + replay.stderr
            assert replay.stdout.splitlines()[-1] == f"{len(files)} sent, {len(files)} ok"
    finally:
        os.kill(run_sh.pid, signal.SIGTERM)  # run.sh's trap stops what it started
        try:
            run_sh.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run_sh.pid, signal.SIGKILL)
            run_sh.wait()
    assert not run_file.exists(), "run.sh's trap removes its run file"


def test_a_stale_run_file_does_not_send_the_demo_to_a_dead_port(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(run_record(gone.pid, port=free_port(), sandbox=free_port())))
    dead = Path(tmp_path / "nothing")
    env = _terminal_env(KCO_RUN_FILE=str(run_file), DATABASE_URL=f"sqlite:///{dead}.sqlite3",
                        KCO_PUBLIC_URL=f"http://127.0.0.1:{free_port()}")
    demo = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "kco", "demo"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 1
    assert "(KCO_PUBLIC_URL)" in demo.stdout and "sandbox on http://127.0.0.1:8001 (the default)" in demo.stdout


def test_where_says_how_it_found_each_address(fresh_terminal):
    from callbacks import create_app

    where.write(fresh_terminal, run_record(os.getpid()))
    where.settle_environment()
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://",
                      "KCO_PUBLIC_URL": os.environ["KCO_PUBLIC_URL"],
                      "KLARNA_API_URL": os.environ["KLARNA_API_URL"]})
    try:
        out = app.test_cli_runner().invoke(args=["kco", "where"]).output
        sandbox = app.test_cli_runner().invoke(args=["kco", "where", "sandbox"]).output
    finally:
        app.extensions["kco"].store.dispose()
    assert "service  http://127.0.0.1:18000 (" in out and "run.json)" in out
    assert sandbox == "http://127.0.0.1:18001\n"
