"""REST error handling: 422 for malformed datapath ids, 404 for unknown
ones, both with a JSON body naming the field; and the OpenAPI document."""

import pytest


def _error_body(resp):
    assert resp.json is not None, "error body is not JSON: %r" % resp.text
    assert isinstance(resp.json.get("error"), str) and resp.json["error"], resp.json
    assert resp.json.get("field") == "dpid", resp.json
    assert isinstance(resp.json.get("reason"), str) and resp.json["reason"], resp.json
    return resp.json


@pytest.mark.parametrize("dpid", ["garbage", "0xZZ", "1:2:3", "-1", "00:00:00:00:00:00:00:01:00", "0x10000000000000000"])
@pytest.mark.parametrize("suffix", ["", "/ports", "/flows"])
def test_malformed_dpid_is_422(controller, dpid, suffix):
    resp = controller.rest.request("GET", "/api/v1/switches/%s%s" % (dpid, suffix))
    assert resp.status == 422, resp
    _error_body(resp)


@pytest.mark.parametrize("dpid", ["4660", "0x1234", "00:00:00:00:00:00:12:34"])
@pytest.mark.parametrize("suffix", ["", "/ports", "/flows"])
def test_unknown_dpid_is_404(controller, dpid, suffix):
    resp = controller.rest.request("GET", "/api/v1/switches/%s%s" % (dpid, suffix))
    assert resp.status == 404, resp
    _error_body(resp)


def test_no_switches_yet(controller):
    assert controller.rest.switches() == []
    assert controller.rest.health()["switches"] == 0


def test_openapi_document(controller):
    doc = controller.rest.get("/api/v1/openapi.json")
    assert str(doc.get("openapi", "")).startswith("3."), doc.get("openapi")
    paths = doc["paths"]
    for path in ("/api/v1/health", "/api/v1/switches"):
        assert path in paths, sorted(paths)
    assert any(p.startswith("/api/v1/switches/{") for p in paths), sorted(paths)
