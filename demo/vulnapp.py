#!/usr/bin/env python3
"""A deliberately vulnerable login application for Ward's demo. NEVER expose it.

The login query is built by string concatenation (the textbook SQL injection), over
an in-memory SQLite database, so that

    user = admin' UNION SELECT 1, sqlite_version(), 1 --

logs in as a "user" named after the SQLite version. Ward's demo puts it behind nginx
twice: SecRuleEngine DetectionOnly (the attack goes through and is logged) and On
(the attack gets 403). Python standard library only.

Usage: vulnapp.py PORT   (listens on 127.0.0.1 only)
"""
import sqlite3
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

DB = sqlite3.connect(":memory:")
DB.executescript(
    """
    CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password TEXT);
    INSERT INTO users (name, password) VALUES ('admin', 'n0t-th1s-0ne'), ('alice', 'wonderland');
    """
)

FORM = """<!doctype html>
<title>Vulnerable login (Ward demo)</title>
<h1>Log in</h1>
<form method="post" action="/login">
  <label>User <input name="user"></label>
  <label>Password <input name="password" type="password"></label>
  <button>Log in</button>
</form>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "vulnapp/1.0"

    def answer(self, status, text, ctype="text/plain; charset=utf-8"):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def login(self, params):
        user = params.get("user", [""])[0]
        password = params.get("password", [""])[0]
        # The vulnerability, on purpose: user input pasted into SQL.
        query = "SELECT id, name, 1 FROM users WHERE name = '" + user + "' AND password = '" + password + "'"
        try:
            rows = DB.execute(query).fetchall()
        except sqlite3.Error as e:
            return self.answer(500, f"SQL error: {e}\nquery: {query}\n")
        if rows:
            return self.answer(200, f"Welcome, {rows[0][1]}!\n")
        return self.answer(401, "Login failed.\n")

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/login":
            return self.login(urllib.parse.parse_qs(url.query))
        if url.path == "/":
            return self.answer(200, FORM, "text/html; charset=utf-8")
        return self.answer(404, "Not found.\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        if urllib.parse.urlsplit(self.path).path == "/login":
            return self.login(urllib.parse.parse_qs(body))
        return self.answer(404, "Not found.\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("vulnapp: " + (fmt % args) + "\n")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8090
    server = HTTPServer(("127.0.0.1", port), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
