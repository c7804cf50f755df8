"""An Alertmanager webhook receiver for the tests: what an operator's pager would get."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook that keeps every alert Alertmanager notifies: (incident id, firing|resolved)."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                got.extend((a["labels"]["incident_id"], a["status"]) for a in body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def count(self, iid: str, status: str) -> int:
        return self.got.count((iid, status))

    def close(self) -> None:
        self.http.shutdown()
