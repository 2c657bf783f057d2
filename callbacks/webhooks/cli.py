"""`flask kco deliver` (the worker) and `flask kco webhooks add|list|remove`."""
from __future__ import annotations

import click
from flask import current_app

from callbacks.webhooks import endpoints


def _store():
    return current_app.extensions["kco"].store


@click.command("deliver")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Messages delivered at once (never two of one session to one endpoint).")
@click.option("--poll", type=click.FloatRange(0.01, 60), default=0.25, show_default=True,
              help="Seconds between looks for due messages (PostgreSQL also wakes on NOTIFY).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), envvar="KCO_WORKER_METRICS_PORT",
              help="Serve this worker's Prometheus metrics on this port (KCO_WORKER_METRICS_PORT).")
@click.option("--once", is_flag=True, help="Deliver what is due now, once, and exit.")
def deliver(concurrency, poll, metrics_port, once):
    """Deliver the webhook messages (docs/webhooks.md): runs until SIGTERM or Ctrl-C. On
    PostgreSQL run as many as you like, on any hosts; on SQLite run one."""
    from callbacks.webhooks.worker import Deliverer

    worker = Deliverer.from_config(_store(), current_app.config, concurrency=concurrency,
                                   poll=poll)
    if metrics_port:
        from prometheus_client import start_http_server
        start_http_server(metrics_port, registry=worker.metrics.registry)
    if once:
        click.echo(f"attempted {worker.run_once()} message(s)")
        return
    worker.install_signal_handlers()
    click.echo(f"delivering webhooks from {_store().engine.url.render_as_string(hide_password=True)}"
               f" (worker {worker.token})")
    worker.run()


webhooks_cli = click.Group("webhooks", help="Webhook endpoints (docs/webhooks.md).")


@webhooks_cli.command("add")
@click.argument("url")
@click.option("--event-type", "event_types", multiple=True, metavar="TYPE",
              help="Deliver only these event types (repeatable; default: every type).")
@click.option("--description", default=None)
def add(url, event_types, description):
    """Subscribe URL; prints the endpoint and its signing secret (shown only now)."""
    from callbacks.rules.state import EventType
    from callbacks.webhooks.ssrf import url_problem

    problem = url_problem(url, current_app.config["KCO_WEBHOOK_PRIVATE_URLS"])
    unknown = sorted(set(event_types) - {t.value for t in EventType})
    if problem or unknown:
        raise click.UsageError(problem or f"unknown event type(s): {', '.join(unknown)}")
    created = endpoints.create(_store(), url, list(event_types) or None, description)
    click.echo(f"{created['id']} {created['url']}\nsecret: {created['secret']}")


@webhooks_cli.command("list")
def list_():
    """Every endpoint, enabled or not."""
    for ep in endpoints.listed(_store()):
        types = ",".join(ep["event_types"]) if ep["event_types"] else "*"
        state = "enabled" if ep["enabled"] else f"DISABLED ({ep['disabled_reason']})"
        click.echo(f"{ep['id']} {ep['url']} {types} {state}")


@webhooks_cli.command("remove")
@click.argument("endpoint_id")
def remove(endpoint_id):
    """Remove the endpoint and its queued messages."""
    if not endpoints.remove(_store(), endpoint_id):
        raise click.ClickException(f"no endpoint {endpoint_id}")
    click.echo(f"removed {endpoint_id}")
