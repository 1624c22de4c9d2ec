"""A tiny JSON client for Flowgate's REST API (stdlib only)."""

import json
import urllib.error
import urllib.request


class RestResponse:
    """Status code plus decoded JSON body (or None when the body is not JSON)."""

    def __init__(self, status, body_text):
        self.status = status
        self.text = body_text
        try:
            self.json = json.loads(body_text) if body_text else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "RestResponse(%d, %s)" % (self.status, self.text[:200])


class RestError(RuntimeError):
    """A REST call returned an unexpected status."""


class RestClient:
    """GET/POST/PUT/DELETE against one controller; errors are returned, not raised,
    by `request`; the convenience getters raise RestError on non-2xx."""

    def __init__(self, base_url, timeout=10):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method, path, body=None):
        """Send one request; return a RestResponse for any HTTP status."""
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return RestResponse(resp.status, resp.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as err:
            return RestResponse(err.code, err.read().decode("utf-8", "replace"))

    def get(self, path):
        """GET `path` and return the decoded JSON; raise RestError unless 2xx."""
        resp = self.request("GET", path)
        if not 200 <= resp.status < 300:
            raise RestError("GET %s -> %d %s" % (path, resp.status, resp.text[:500]))
        return resp.json

    def health(self):
        return self.get("/api/v1/health")

    def switches(self):
        return self.get("/api/v1/switches")

    def switch(self, dpid):
        return self.get("/api/v1/switches/%s" % dpid)

    def ports(self, dpid):
        return self.get("/api/v1/switches/%s/ports" % dpid)

    def flows(self, dpid):
        return self.get("/api/v1/switches/%s/flows" % dpid)


def dpid_str(dpid_int):
    """00:00:00:00:00:00:00:01 form of an integer datapath id."""
    raw = "%016x" % dpid_int
    return ":".join(raw[i : i + 2] for i in range(0, 16, 2))
