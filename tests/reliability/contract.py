"""The two error bodies of the contract (docs/design.md §6.2 and §7.4), as assertions."""
from __future__ import annotations

from http import HTTPStatus


def assert_our_error(response, status: int) -> dict:
    """`{code, status, message, errors}`: code = the HTTP status, errors maps field → [text]."""
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json", response.headers.get("Content-Type")
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"code", "status", "message", "errors"}, body
    assert body["code"] == status and body["status"] == HTTPStatus(status).phrase, body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["errors"], dict), body
    return body


def assert_klarna_error(response, error_types: set[str]) -> dict:
    """Klarna's `{error_type, error_text}` (+ `errors` for support), status 400."""
    assert response.status_code == 400, response.status_code
    assert response.mimetype == "application/json", response.headers.get("Content-Type")
    body = response.get_json()
    assert isinstance(body, dict), body
    assert set(body) <= {"error_type", "error_text", "errors"}, body
    assert body.get("error_type") in error_types, body
    assert isinstance(body.get("error_text"), str) and body["error_text"].strip(), body
    assert isinstance(body.get("errors", {}), dict), body
    return body
