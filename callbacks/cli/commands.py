"""`flask --app wsgi kco …`: operator commands."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

kco_cli = AppGroup("kco", help="kco-sync operations.")


@kco_cli.command("migrate")
def migrate():
    """Bring the database schema up to date (safe to run repeatedly)."""
    store = current_app.extensions["kco"].store
    revision = store.migrate()
    if not store.migrated:  # a migration (perhaps the app's own at start-up) logged its line
        click.echo(f"database {store.engine.url.render_as_string(hide_password=True)} "
                   f"is at revision {revision}: nothing to migrate")


@kco_cli.command("secret")
def secret():
    """Print a fresh random secret for KCO_CALLBACK_SECRET or KCO_API_KEY (43 URL-safe
    characters from the OS's CSPRNG); production refuses anything weaker (config.py)."""
    import secrets

    click.echo(secrets.token_urlsafe(32))


@kco_cli.command("settings")
@click.option("--markdown", is_flag=True, help="Print docs/configuration.md: every variable with its "
              "kind, default and meaning (settings.py is the one declaration of them).")
def settings_command(markdown: bool):
    """List every environment variable kco-sync reads and this process's value (secrets are
    shown as set or unset, never printed)."""
    import settings

    if markdown:
        click.echo(settings.markdown(), nl=False)
        return
    for setting in settings.SETTINGS:
        value = settings.raw(setting.name)
        if setting.kind == "secret" and value is not None:
            value = "(set)"
        click.echo(f"{setting.name}={value if value is not None else ''}"
                   f"{'' if value is not None else '  # unset: ' + setting.default_text()}")


@kco_cli.command("purge")
@click.option("--older-than", "days", required=True, type=click.IntRange(min=1),
              help="Delete callback log and activity entries older than this many days "
                   "(a whole number ≥ 1).")
def purge(days: int):
    """Delete old callback log entries and the support console's activity record of Klarna
    API calls and storefront writes (the only personal data kept, scrubbed; docs/design.md §10)."""
    from datetime import timedelta

    from callbacks.store import activity

    store = current_app.extensions["kco"].store
    deleted = store.purge_callback_log(timedelta(days=days))
    activities = activity.purge(store, timedelta(days=days))
    click.echo(f"deleted {deleted} callback log entr{'y' if deleted == 1 else 'ies'} and "
               f"{activities} activity entr{'y' if activities == 1 else 'ies'} "
               f"older than {days} day{'' if days == 1 else 's'}")


@kco_cli.command("reconcile")
def reconcile():
    """Acknowledge every completed Klarna order not yet acknowledged (stops Klarna's pushes).
    Exits 1 when any acknowledge failed, so a cron job's failure is visible."""
    results = current_app.extensions["kco"].lifecycle.reconcile()
    for order_id, outcome in results:
        click.echo(f"{order_id}: {outcome}")
    failed = [r for r in results if r[1].startswith("acknowledge failed")]
    click.echo(f"{len(results)} unacknowledged order(s), {len(failed)} failed")
    if failed:
        raise SystemExit(1)


RUNNING = "(the running service)"  # `--url` given without a value


@kco_cli.command("where")
@click.argument("what", required=False, type=click.Choice(["service", "sandbox"]))
def where_command(what: str | None):
    """Where the service and the sandbox are, as `kco demo` and `kco replay` find them:
    KCO_PUBLIC_URL / KLARNA_API_URL, else PORT / SANDBOX_PORT, else the running
    ./scripts/run.sh's instance/run.json, else ports 8000 and 8001. With SERVICE or SANDBOX,
    just that URL, for a shell: `export BASE=$(flask --app wsgi kco where service)`."""
    from callbacks.cli import where

    places = {"service": where.locate(current_app.config, "KCO_PUBLIC_URL", "--url"),
              "sandbox": where.locate(current_app.config, "KLARNA_API_URL", "--sandbox-url")}
    if what:
        click.echo(places[what].url)
        return
    for name, place in places.items():
        click.echo(f"{name:<8} {place}")


@kco_cli.command("replay")
@click.argument("paths", nargs=-1, metavar="PATH…")
@click.option("--url", metavar="BASE", is_flag=False, flag_value=RUNNING,
              help="Post over HTTP to this running service (e.g. http://127.0.0.1:8000); its "
                   "KCO_CALLBACK_SECRET must be this app's. `--url` alone (last): the running "
                   "service, found as `kco where service` finds it. Default: in-process.")
@click.option("--session", metavar="SID", help="Send every payload for this session id instead "
              "of the sample's own or a fresh replay-… one.")
@click.option("--from-log", "log_ids", multiple=True, metavar="ID", type=click.IntRange(min=1),
              help="Replay the callback log entry ID (its scrubbed request) to the same callback "
                   "and session (or --session). Repeatable.")
@click.option("--order-id", metavar="ID", help="Use this Klarna order id for every payload "
              "(URL, and the body of validation and notification). Without it, a sample that "
              "needs a completed order (klarna_order) gets a new one at the sandbox first.")
@click.option("--sandbox-url", metavar="URL",
              help="The sandbox where the orders that push and notification samples need are made "
                   "(and, in-process, the Klarna the callbacks call). Default: KLARNA_API_URL, else "
                   "http://127.0.0.1:$SANDBOX_PORT, else where ./scripts/run.sh started it, else "
                   "http://127.0.0.1:8001.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr; default: on when more than 10 payloads and stderr "
                   "is a terminal (the report then follows the bar).")
@click.option("-v", "--verbose", is_flag=True, help="Print every reply body.")
def replay(paths, url, session, log_ids, order_id, sandbox_url, progress, verbose):
    """Post Klarna callback samples (files, or directories: every *.json inside, sorted) with
    valid tokens, check each reply against Klarna's rules and the sample's `expect`, and print
    one line per payload and a summary (samples/README.md).

    Without --url the callbacks go in-process through this app's test client, so they WRITE
    INTO THE CONFIGURED DATABASE (DATABASE_URL) like real callbacks; a push then also tries
    Klarna (KLARNA_API_URL) after its 200. Each line says ok, CHANGED (a reply Klarna accepts,
    but not the status or error_type of `expect` or of the log entry) or FAIL (it breaks Klarna's
    rules, is a 5xx or was not sent). Exit 0 when every reply is ok, 1 otherwise, 2 for bad input
    (missing file, invalid sample, unknown log id, unreachable --url)."""
    from callbacks.cli import replay as replaying
    from callbacks.cli import where

    if url == RUNNING:
        url = where.locate(current_app.config, "KCO_PUBLIC_URL", "--url").url
    code = replaying.run(current_app, paths, url=url, session=session, log_ids=log_ids,
                         order_id=order_id, verbose=verbose, progress=progress, sandbox_url=sandbox_url)
    raise SystemExit(code)


@kco_cli.command("demo")
@click.option("--standalone", is_flag=True,
              help="Start kco-sync and the sandbox in this process on free ports (a throwaway "
                   "SQLite database) instead of using the running ones.")
@click.option("--url", "--service-url", "service_url", metavar="URL",
              help="kco-sync's base URL. Default: KCO_PUBLIC_URL, else http://127.0.0.1:$PORT, else "
                   "where ./scripts/run.sh started it (instance/run.json), else http://127.0.0.1:8000.")
@click.option("--sandbox-url", metavar="URL",
              help="The sandbox's base URL. Default: KLARNA_API_URL, else http://127.0.0.1:$SANDBOX_PORT, "
                   "else where ./scripts/run.sh started it, else http://127.0.0.1:8001.")
def demo(standalone, service_url, sandbox_url):
    """Drive one scripted checkout through the sandbox (SE/SEK → FI/EUR → purchase → push →
    acknowledge), printing each step, the callbacks, the final state and the event feed."""
    from callbacks.cli import demo as demo_script

    raise SystemExit(demo_script.main(current_app.config, standalone_mode=standalone,
                                      service_url=service_url, sandbox_url=sandbox_url,
                                      echo=click.echo))


def init_app(app: Flask) -> None:
    from callbacks.webhooks import cli as webhooks

    kco_cli.add_command(webhooks.deliver)
    kco_cli.add_command(webhooks.webhooks_cli)
    app.cli.add_command(kco_cli)
