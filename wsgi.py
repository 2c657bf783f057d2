"""The WSGI entry point for gunicorn and `flask --app wsgi`."""
from config import environment

if environment() != "production":
    from dotenv import load_dotenv

    load_dotenv()

from callbacks import create_app

app = create_app()
