"""gunicorn reads this file from the working directory by itself (its default `--config`).

The worker class, workers and threads are in the Procfile; this file only tells each worker its
real thread count (the long-poll limit is derived from it), keeps the Prometheus
multiprocess directory right (docs/long-poll.md, callbacks/metrics.py) and turns gunicorn's
control socket off (below).
"""
import os
from pathlib import Path

# gunicorn 25+ opens a control socket for `gunicornc` at one per-user path
# ($XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl): the service and the sandbox
# that scripts/run.sh starts, or the servers a test run starts at once, would take it from each
# other. Off unless GUNICORN_CONTROL_SOCKET names a path for this server alone.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True


def on_starting(server):
    """Start with an empty PROMETHEUS_MULTIPROC_DIR: stale files would add old counts."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    """A dead worker's waiting long-polls no longer wait: drop its live gauge values."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    """Runs in the worker before it loads the app: callbacks/notify.py keeps
    max(4, threads/8) of these threads free of long-polls for Klarna's callbacks."""
    os.environ["GUNICORN_THREADS"] = str(worker.cfg.threads)
