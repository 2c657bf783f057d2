"""/healthz and /metrics."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from callbacks import create_app
from callbacks.web.metrics import Metrics


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_503_when_the_database_is_down(app, client):
    store = app.extensions["kco"].store
    working = store.engine
    # Nothing listens on port 1: a real connection failure, not a mock.
    store.engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                    connect_args={"connect_timeout": 2})
    try:
        response = client.get("/healthz")
    finally:
        store.engine.dispose()
        store.engine = working
    assert response.status_code == 503
    body = response.get_json()
    assert body["code"] == 503 and body["status"] == "Service Unavailable"
    assert "database" in body["message"] and "nobody" not in body["message"]
    assert response.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200


def test_healthz_and_metrics_need_no_api_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_metrics_exposition(client):
    response = client.get("/metrics")
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    for name in ("kco_callbacks_total", "kco_callback_duration_seconds", "kco_longpoll_waiters"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert "kco_longpoll_waiters 0.0" in text


def test_each_app_has_its_own_registry(database_url, klarna, client):
    klarna("address_update", "s-1", {"order_lines": "nope"})
    other = create_app({"TESTING": True, "DATABASE_URL": database_url})
    try:
        assert other.extensions["kco_metrics"].registry is not client.application.extensions["kco_metrics"].registry
        text = other.test_client().get("/metrics").get_data(as_text=True)
        assert 'status="400"' not in text
        assert 'status="400"} 1.0' in client.get("/metrics").get_data(as_text=True)
    finally:
        other.extensions["kco"].store.dispose()


def test_multiprocess_mode_sums_the_workers(tmp_path, monkeypatch):
    """With PROMETHEUS_MULTIPROC_DIR the values live in files, one set per process, and the
    exposition adds them up: two 'workers' here write under two pids."""
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(process_identifier=lambda: 101))
    first = Metrics(str(tmp_path))
    first.observe_callback("push", 200, 0.004)
    first.waiters.inc()
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(process_identifier=lambda: 102))
    second = Metrics(str(tmp_path))
    second.observe_callback("push", 200, 0.002)
    second.waiters.inc()
    second.waiters.inc()
    text = second.exposition().decode()
    assert 'kco_callbacks_total{callback="push",status="200"} 2.0' in text
    assert 'kco_callback_duration_seconds_count{callback="push"} 2.0' in text
    assert "kco_longpoll_waiters 3.0" in text
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(101, str(tmp_path))  # what gunicorn.conf.py's child_exit does
    assert "kco_longpoll_waiters 2.0" in second.exposition().decode()


def test_app_uses_multiprocess_mode_when_the_directory_is_set(database_url, tmp_path, monkeypatch):
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    try:
        assert app.extensions["kco_metrics"].multiproc_dir == str(tmp_path)
        client = app.test_client()
        client.post("/kco/address_update?session=s-1&token=wrong", json={})
        assert 'status="401"} 1.0' in client.get("/metrics").get_data(as_text=True)
        assert list(tmp_path.glob("*.db"))
    finally:
        app.extensions["kco"].store.dispose()


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_ops_endpoints_are_get_only(client, path):
    response = client.post(path)
    assert response.status_code == 405 and response.get_json()["code"] == 405
