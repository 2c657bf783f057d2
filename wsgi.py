"""The WSGI entry point for gunicorn and `flask --app wsgi`."""
import os

if os.environ.get("KCO_ENV") != "production":
    from dotenv import load_dotenv

    load_dotenv()

from callbacks import create_app

app = create_app()
