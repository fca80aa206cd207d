#!/usr/bin/env python3
"""A local stand-in for the Shadowserver Reports API, for botwatch's tests.

It checks requests the way Shadowserver documents them (api_utils wiki, "API:
Documentation" and "API: Reports Query"): every call is an HTTP POST of a JSON object
carrying `apikey`, with an `HMAC2` header holding the hex HMAC-SHA256 of the exact request
body under the client's secret. A wrong key, a missing or wrong signature or a body that is
not JSON is refused. `reports/list` takes `date` (a day or `FROM:TO`), optional `report`
(list of report names) and `type`; `reports/download` takes `id` and answers the CSV.
Each listed report also carries the `url` Shadowserver lists (here `/dl/<id>`, a GET).

Usage: shadowserver-api.py --port N --key K --secret S --reports DIR
DIR holds `<YYYY-MM-DD>-<type>-<report>-geo.csv` files; the day, type and report name are
read from the file name. Prints "listening on PORT" once ready. Every request is logged as
a JSON line on stderr so tests can count what was asked.
"""
import argparse, hashlib, hmac, json, os, re, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+?)-([a-z0-9_]+)-geo\.csv$")


def reports(d):
    out = []
    for f in sorted(os.listdir(d)):
        m = NAME.match(f)
        if m:
            day, typ, report = m.groups()
            rid = hashlib.sha256(f.encode()).hexdigest()[:24]
            out.append({"id": rid, "report": report, "type": typ, "timestamp": day, "file": f})
    return out


def in_range(day, spec):
    if ":" in spec:
        lo, hi = spec.split(":", 1)
        return lo <= day <= hi
    return day == spec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--reports", required=True)
    a = ap.parse_args()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, code, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log(self, **kv):
            print(json.dumps(kv), file=sys.stderr, flush=True)

        def do_GET(self):
            m = re.match(r"^/dl/([0-9a-f]+)$", self.path)
            hit = [r for r in reports(a.reports) if m and r["id"] == m.group(1)]
            self.log(method="GET", path=self.path, ok=bool(hit))
            if not hit:
                return self.answer(404, {"error": "no such report"})
            with open(os.path.join(a.reports, hit[0]["file"]), "rb") as f:
                self.answer(200, f.read(), "text/csv")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            want = hmac.new(a.secret.encode(), body, hashlib.sha256).hexdigest()
            got = self.headers.get("HMAC2", "")
            try:
                req = json.loads(body)
            except ValueError:
                self.log(method="POST", path=self.path, error="not json")
                return self.answer(400, {"error": "request is not JSON"})
            if not hmac.compare_digest(want, got):
                self.log(method="POST", path=self.path, error="bad signature")
                return self.answer(401, {"error": "HMAC2 signature does not match"})
            if req.get("apikey") != a.key:
                self.log(method="POST", path=self.path, error="bad key")
                return self.answer(401, {"error": "unknown apikey"})
            base = "http://127.0.0.1:%d" % self.server.server_address[1]
            if self.path == "/api2/reports/list":
                rs = [r for r in reports(a.reports) if in_range(r["timestamp"], req.get("date", r["timestamp"]))]
                if req.get("report"):
                    rs = [r for r in rs if r["report"] in req["report"]]
                if req.get("type"):
                    types = req["type"] if isinstance(req["type"], list) else [req["type"]]
                    rs = [r for r in rs if r["type"] in types]
                for r in rs:
                    r["url"] = "%s/dl/%s" % (base, r["id"])
                self.log(method="POST", path=self.path, date=req.get("date"), listed=len(rs))
                return self.answer(200, rs)
            if self.path == "/api2/reports/download":
                hit = [r for r in reports(a.reports) if r["id"] == req.get("id")]
                self.log(method="POST", path=self.path, id=req.get("id"), ok=bool(hit))
                if not hit:
                    return self.answer(404, {"error": "no such report"})
                with open(os.path.join(a.reports, hit[0]["file"]), "rb") as f:
                    return self.answer(200, f.read(), "text/csv")
            self.log(method="POST", path=self.path, error="unknown method")
            self.answer(404, {"error": "unknown method"})

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
