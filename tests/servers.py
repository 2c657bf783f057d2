"""Real server processes for end-to-end tests: gunicorn as the Procfile runs it."""
from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free port: the kernel's choice, or one of KCO_TEST_PORT_RANGE (`23000-23999`) when a
    machine shared by several test runs gives each its own range."""
    span = os.environ.get("KCO_TEST_PORT_RANGE")
    if span:
        low, high = (int(n) for n in span.split("-"))
        for port in random.sample(range(low, high + 1), high + 1 - low):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in KCO_TEST_PORT_RANGE={span}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_concurrency() -> tuple[int, int]:
    """(workers, threads per worker) the Procfile's web process runs with by default."""
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    workers = re.search(r"--workers \$\{WEB_CONCURRENCY:-(\d+)\}", web)
    threads = re.search(r"--threads \$\{GUNICORN_THREADS:-(\d+)\}", web)
    assert workers and threads and "--worker-class gthread" in web, web
    return int(workers.group(1)), int(threads.group(1))


def wait_until_up(base_url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the server answers (or exits): a deadline for gunicorn booting its workers, each
    importing the app, on a busy machine — not a start-up time the tests hold it to."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with warnings.catch_warnings():  # https: the test's own certificate, not checked here
                warnings.simplefilter("ignore")
                requests.get(base_url + "/", timeout=2, verify=False)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"server at {base_url} did not come up in {timeout} s")


def self_signed(directory: Path) -> tuple[Path, Path] | None:
    """A certificate for 127.0.0.1 and its key, made by the openssl command (None without it)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return cert, key


@contextmanager
def gunicorn(env: dict, app: str = "wsgi:app", workers: int = 2, threads: int = 8,
             port: int | None = None, tls: tuple[Path, Path] | None = None):
    """Start gunicorn with gthread workers on `port` (default: a free one); yields the base
    URL. Pass `port=free_port()` when the environment must name the URL before the start
    (KCO_PUBLIC_URL, for callbacks from the sandbox). `tls` = (certificate, key): gunicorn
    terminates TLS itself (its --certfile/--keyfile) and the URL is https."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "gunicorn", app, "--worker-class", "gthread",
           "--workers", str(workers), "--threads", str(threads),
           "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5"]
    if tls:
        cmd += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    full_env = {**os.environ, **env}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        wait_until_up(base, proc)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
