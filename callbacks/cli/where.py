"""Where the service and the sandbox are: what `flask kco demo`, `flask kco replay` and every
other command in a second terminal need to know about the `./scripts/run.sh` in the first.

run.sh picks the ports (`PORT`, `SANDBOX_PORT`) and exports `KCO_PUBLIC_URL` and
`KLARNA_API_URL` for the processes it starts, but a command typed in another terminal sees none
of that. So run.sh writes the run file (`instance/run.json`, or `KCO_RUN_FILE`) while it runs:

    {"url": "http://127.0.0.1:18000", "public_url": "http://127.0.0.1:18000",
     "klarna_api_url": "http://127.0.0.1:18001", "sandbox_url": "http://127.0.0.1:18001",
     "pid": 4242}

`url` is where the service listens, `public_url` its `KCO_PUBLIC_URL` (the same unless set to a
tunnel), `sandbox_url` the sandbox run.sh started (null when `KLARNA_API_URL` points elsewhere
and it started none) and `pid` run.sh's own: a file whose run.sh is gone (killed before its trap
could remove the file) is ignored, so a stale file never sends a command to a dead port.

Each address is taken from the first of: a command-line flag (`--url`, `--sandbox-url`), the
environment (`KCO_PUBLIC_URL`, else `PORT`; `KLARNA_API_URL`, else `SANDBOX_PORT`; `.env`
included), the run file, the defaults (ports 8000 and 8001). `settle_environment()` applies the
same order to the environment itself before the app is made (wsgi.py, outside production), so
the app's Klarna client, its `merchant_urls` and its redirects agree with what the commands
print. Production never reads the run file: there every address is set explicitly.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import settings
from config import INSTANCE

LOOPBACK = "http://127.0.0.1"
RUN_FILE = INSTANCE / "run.json"
# What settle_environment() set, and from where, so a command can say how it found an address.
settled: dict[str, str] = {}


@dataclass(frozen=True)
class Place:
    url: str
    source: str       # how it was found: "--url", "KCO_PUBLIC_URL", "PORT", the run file, "the default"

    def __str__(self) -> str:
        return f"{self.url} ({self.source})"


def run_file() -> Path:
    return Path(settings.raw("KCO_RUN_FILE") or RUN_FILE)


def read_run_file(path: Path | None = None) -> dict[str, Any]:
    """The running run.sh's file, or {} when there is none, it is not JSON, or its run.sh has
    exited."""
    path = run_file() if path is None else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not _alive(data.get("pid")):
        return {}
    return {k: v.rstrip("/") if isinstance(v, str) else v for k, v in data.items()}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return False
    return True


def _port_url(name: str) -> str | None:
    port = (settings.raw(name) or "").strip()
    return f"{LOOPBACK}:{port}" if port else None


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def locate(config: Mapping[str, Any], name: str, flag: str, value: str | None = None) -> Place:
    """The address the app was configured with for `name` (KCO_PUBLIC_URL or KLARNA_API_URL:
    the environment's, else what settle_environment() found, else the default), unless the
    command's `flag` gives one."""
    if value:
        return Place(value.strip().rstrip("/"), flag)
    url = str(config[name]).rstrip("/")
    if name in settled:
        source = settled[name]
    elif settings.raw(name) is not None:
        source = name
    elif url == settings.declared(name).default:
        source = "the default"
    else:
        source = "the app's configuration"
    return Place(url, source)


def settle_environment(path: Path | None = None) -> dict[str, str]:
    """Set `KCO_PUBLIC_URL` and `KLARNA_API_URL` in os.environ where they are unset, from `PORT`
    and `SANDBOX_PORT` as run.sh does, else from the running run.sh's file; returns what was
    set. Like `.env`, it never overrides a variable that is set."""
    path = run_file() if path is None else path
    run = read_run_file(path)
    label = _label(path)
    chosen: dict[str, tuple[str, str]] = {}
    for name, port_name, key in (("KCO_PUBLIC_URL", "PORT", "public_url"),
                                 ("KLARNA_API_URL", "SANDBOX_PORT", "klarna_api_url")):
        if settings.raw(name) is not None:
            continue
        port = _port_url(port_name)
        if port:
            chosen[name] = (port, port_name)
        elif run.get(key):
            chosen[name] = (run[key], label)
    os.environ.update({name: value for name, (value, _) in chosen.items()})
    settled.update({name: source for name, (_, source) in chosen.items()})
    return {name: value for name, (value, _) in chosen.items()}


# -- run.sh's side ------------------------------------------------------------------------------
def write(path: Path, record: Mapping[str, Any]) -> None:
    """Atomically: a command reading while run.sh writes sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(dict(record), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m callbacks.cli.where …`: scripts/run.sh writes and removes its run file."""
    parser = argparse.ArgumentParser(prog="python -m callbacks.cli.where")
    parser.add_argument("action", choices=("write", "remove"))
    parser.add_argument("--pid", type=int, required=True, help="run.sh's process id")
    parser.add_argument("--url")
    parser.add_argument("--public-url")
    parser.add_argument("--klarna-api-url")
    parser.add_argument("--sandbox-url", default="")
    args = parser.parse_args(argv)
    path = run_file()
    if args.action == "write":
        write(path, {"url": args.url, "public_url": args.public_url,
                     "klarna_api_url": args.klarna_api_url, "sandbox_url": args.sandbox_url or None,
                     "pid": args.pid})
        return
    try:  # only our own: another run.sh in this folder may have written it since
        ours = json.loads(path.read_text(encoding="utf-8")).get("pid") == args.pid
    except (OSError, ValueError, AttributeError):
        return
    if ours:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
