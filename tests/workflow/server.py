"""A small HTTP server for the workflow scenarios: real sockets on 127.0.0.1, counting requests per path.

Usage: server.py PORTFILE. Writes the port it bound to PORTFILE, then serves until killed.
  GET  /count?path=P          {"count": requests seen for path P} (not counted itself)
  GET  /json                  a fixed JSON document
  ANY  /echo                  {"method", "path", "query", "raw_query", "basic" (the Basic credentials, still
                              base64), "headers", "body", "json"} of the request
  ANY  /status/NNN            answers status NNN with {"status": NNN}
  GET  /slow?ms=N             answers after N ms
  ANY  /flaky?fail=K&key=X    503 for the first K requests with that key, then 200 {"ok": true, "n": n}
  GET  /redirect?to=URL       302 to URL
  POST /orders                201 {"created": true, "n": n} (the resume test counts these)
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

COUNTS = {}
KEYS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        if u.path == "/count":
            with LOCK:
                return self.reply(200, {"count": COUNTS.get(q.get("path", ""), 0)})
        with LOCK:
            COUNTS[u.path] = COUNTS.get(u.path, 0) + 1
            count = COUNTS[u.path]
        if u.path == "/json":
            return self.reply(200, {"user": {"name": "ada", "age": 36}, "items": [1, 2, 3], "active": True})
        if u.path == "/echo":
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            auth = self.headers.get("Authorization") or ""
            return self.reply(200, {"method": self.command, "path": u.path, "query": q, "raw_query": u.query,
                                    "basic": auth[6:] if auth.startswith("Basic ") else None,
                                    "headers": dict(self.headers.items()), "body": body, "json": parsed})
        if u.path.startswith("/status/"):
            code = int(u.path.rsplit("/", 1)[1])
            return self.reply(code, {"status": code})
        if u.path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000.0)
            return self.reply(200, {"slow": True})
        if u.path == "/flaky":
            key = q.get("key", "")
            with LOCK:
                KEYS[key] = KEYS.get(key, 0) + 1
                k = KEYS[key]
            if k <= int(q.get("fail", "1")):
                return self.reply(503, {"try": k})
            return self.reply(200, {"ok": True, "n": k})
        if u.path == "/redirect":
            return self.reply(302, {}, {"Location": q.get("to", "/json")})
        if u.path == "/orders":
            return self.reply(201, {"created": True, "n": count})
        return self.reply(404, {"error": "no such path"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
