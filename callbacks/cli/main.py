"""`kco …`: the console script `pip install .` puts on PATH, the same commands as
`flask --app wsgi kco …` from any directory.

`flask --app wsgi` finds wsgi.py in the working directory, which only a checkout has; an installed
copy imports the installed wsgi module instead. Everything else is what flask does: `.flaskenv`
and `.env` from the working directory up are read first (values already in the environment win),
FLASK_DEBUG sets the app's debug flag, and the commands run in the app's context (AppGroup).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from flask import Flask
from flask.cli import ScriptInfo, load_dotenv


def _wsgi_app() -> Flask:
    from wsgi import app

    return app


def main(args: Sequence[str] | None = None) -> None:
    load_dotenv()
    from config import ConfigError

    info = ScriptInfo(create_app=_wsgi_app)
    try:
        app = info.load_app()
    except ConfigError as exc:  # a setting start-up refuses: its message says which and why
        click.secho(f"Error: {exc}", err=True, fg="red")
        sys.exit(1)
    group = app.cli.commands["kco"]
    group.main(args=list(args) if args is not None else None, prog_name="kco", obj=info)


if __name__ == "__main__":
    main()
