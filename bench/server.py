"""gunicorn exactly as the Procfile starts it (its `web:` line, read at run time), on loopback,
and what bench/run.py reads about its workers from /proc: RSS and CPU time."""
from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command(app: str, port: int, env: dict) -> list[str]:
    """The Procfile's `web:` command with ${VAR:-default} expanded from `env`, gunicorn from
    the project's .venv, `app` instead of wsgi:app, and bound to 127.0.0.1 only."""
    line = next(l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("web:"))

    def expand(match: re.Match) -> str:
        name, default = match.group(1) or match.group(3), match.group(2) or ""
        return env.get(name) or default

    words = shlex.split(re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", expand, line[4:]))
    if words[0] != "gunicorn" or words[1] != "wsgi:app" or "--bind" not in words:
        raise SystemExit(f"bench: the Procfile's web line is not `gunicorn wsgi:app … --bind …`: {line}")
    words[0], words[1] = str(VENV_BIN / "gunicorn"), app
    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"
    return words


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


class Server:
    def __init__(self, proc: subprocess.Popen, base: str, command: list[str], log: Path):
        self.proc, self.base, self.command, self.log = proc, base, command, log

    @property
    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        """utime + stime of every worker (the master does no request work)."""
        total = 0
        for pid in self.workers:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / CLK_TCK

    def memory(self, key: str = "VmRSS") -> dict[int, int]:
        """`key` (VmRSS or VmHWM) of each worker, in KiB."""
        out = {}
        for pid in self.workers:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(key + ":"):
                        out[pid] = int(line.split()[1])
            except OSError:
                pass
        return out


@contextmanager
def gunicorn(app: str, env: dict, workdir: Path, name: str):
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port)}
    command = procfile_command(app, port, full_env)
    log = workdir / f"{name}.gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(proc, f"http://127.0.0.1:{port}", command, log)
    try:
        wait_until_up(server, int(option(command, "--workers")))
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until_up(server: Server, workers: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"bench: gunicorn exited with {server.proc.returncode}; "
                             f"see {server.log}:\n{server.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.base + "/healthz", timeout=2):
                pass
            if len(server.workers) == workers:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: gunicorn did not come up in {timeout:.0f} s; see {server.log}")


class Sampler:
    """Samples each worker's VmRSS every `interval` s while running; `peak_kib` is the largest
    value seen for any one worker."""

    def __init__(self, server: Server, interval: float = 0.1):
        self.server, self.interval = server, interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max([self.peak_kib, *self.server.memory().values()])
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max([self.peak_kib, *self.server.memory().values()])
