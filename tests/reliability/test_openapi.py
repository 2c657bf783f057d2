"""GET /openapi.json (flask-smorest, callbacks/storefront/api.py): a valid OpenAPI 3.1 document of
the storefront API, generated from the routes and the schemas the views load and dump with.
schemathesis fuzzes the API from it (test_fuzz_api.py)."""
from __future__ import annotations

import re

import jsonschema
import pytest
from openapi_spec_validator import validate

from callbacks.web import schemas

from .contract import assert_our_error


@pytest.fixture
def document(rel_app):
    response = rel_app.test_client().get("/openapi.json")  # no Authorization: it opens nothing
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def test_the_document_is_valid_openapi(document):
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_storefront_route_is_documented_and_nothing_else(rel_app, document):
    routes = set()
    for rule in rel_app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule == "/healthz":
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, ops in document["paths"].items()
                  for method in ops if method != "parameters"}
    assert documented == routes


def test_parameters_security_and_errors(document):
    paths = document["paths"]
    sid = paths["/api/sessions/{sid}/cart"]["parameters"][0]
    assert sid["in"] == "path" and sid["schema"]["maxLength"] == 128
    pattern = re.compile(sid["schema"]["pattern"])
    for candidate in ("s-1", "a" * 128, "A.b_c~d-9", "", "a" * 129, "a/b", "ü", "a b"):
        assert bool(pattern.search(candidate)) == bool(schemas.SESSION_ID.match(candidate)), candidate
    events = {p["name"]: p for p in paths["/api/sessions/{sid}/events"]["get"]["parameters"]}
    assert set(events) == {"after", "wait", "token"}
    assert events["wait"]["schema"]["maximum"] == 30
    state = [document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
             for p in paths["/api/sessions/{sid}/state"]["get"]["parameters"]]
    assert {p["name"] for p in state} >= {"token", "If-None-Match"}
    assert "ETag" in paths["/api/sessions/{sid}/state"]["get"]["responses"]["200"]["headers"]
    assert "304" in paths["/api/sessions/{sid}/state"]["get"]["responses"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "description": "KCO_API_KEY"}
    assert document["security"] == [{"bearerAuth": []}]
    for path, ops in paths.items():
        for method, op in ops.items():
            if method == "parameters" or path == "/healthz":
                continue
            assert "401" in op["responses"] and "default" in op["responses"], (path, method)


def test_request_bodies_are_the_marshmallow_schemas(document):
    cart = document["components"]["schemas"]["Cart"]
    assert cart["additionalProperties"] is False and cart["required"] == ["items"]
    assert cart["properties"]["items"]["maxItems"] == 1000
    item = document["components"]["schemas"]["CartItem"]
    assert item["properties"]["quantity"] == {"type": "integer", "minimum": 1, "maximum": 10000}
    market = document["components"]["schemas"]["MarketChange"]
    assert market["additionalProperties"] is False and market["required"] == ["country"]


def test_our_error_bodies_fit_the_documented_error_schema(rel_app, document):
    client = rel_app.test_client()
    error_schema = {**document["components"]["schemas"]["Error"],
                    "$defs": document["components"]["schemas"]}
    key = {"Authorization": f"Bearer {rel_app.config['KCO_API_KEY']}"}
    for response, status in (
            (client.get("/api/markets"), 401),
            (client.get("/api/sessions/nobody/state", headers=key), 404),
            (client.put("/api/sessions/s/cart", headers=key, json={"items": [], "x": 1}), 422),
            (client.put("/api/sessions/s/cart", headers=key, data=b"{", content_type="application/json"), 400),
            (client.get("/api/events?after=-1", headers=key), 400),
            (client.delete("/api/markets", headers=key), 405)):
        body = assert_our_error(response, status)
        jsonschema.validate(body, error_schema)
