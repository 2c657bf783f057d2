"""The WSGI entry point for gunicorn and `flask --app wsgi`."""
from config import environment

if environment() != "production":
    from dotenv import load_dotenv

    load_dotenv()
    # A command in a second terminal finds what ./scripts/run.sh started in the first (its
    # ports, or instance/run.json), where the environment does not say (callbacks/cli/where.py).
    from callbacks.cli import where

    where.settle_environment()

from callbacks import create_app

app = create_app()
