#!/usr/bin/env python3
"""A stand-in for Kibana in Ward's demo: answers Kibana's paths with Kibana-shaped
JSON so that recorded Kibana requests can be replayed through Ward and CRS with the
Kibana plugin. Python standard library only.

Usage: kibana_standin.py PORT   (listens on 127.0.0.1 only; Kibana's own port is 5601)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server_version = "kibana-standin/8.15.0"
    protocol_version = "HTTP/1.1"

    def answer(self, status, obj, ctype="application/json"):
        body = (json.dumps(obj) if ctype == "application/json" else obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("kbn-name", "kibana-standin")
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        path = self.path.split("?", 1)[0]
        if path == "/api/status":
            return self.answer(200, {"name": "kibana-standin", "version": {"number": "8.15.0"},
                                     "status": {"overall": {"level": "available"}}})
        if path.startswith("/internal/search/") or path == "/internal/bsearch":
            return self.answer(200, {"isPartial": False, "isRunning": False,
                                     "rawResponse": {"took": 1, "timed_out": False,
                                                     "hits": {"total": 0, "hits": []}}})
        if path.startswith("/api/") or path.startswith("/internal/"):
            return self.answer(200, {"ok": True, "path": path})
        return self.answer(200, "<!doctype html><title>Kibana (stand-in)</title><h1>Kibana stand-in</h1>\n",
                           "text/html; charset=utf-8")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = route

    def log_message(self, fmt, *args):
        sys.stderr.write("kibana-standin: " + (fmt % args) + "\n")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5601
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
