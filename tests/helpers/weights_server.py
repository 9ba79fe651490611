"""A local HTTP server (a thread on 127.0.0.1) that stands in for weights hosts in tests."""
from __future__ import annotations

import http.server
import re
import threading
import urllib.parse

__all__ = ["WeightsServer"]


class WeightsServer:
    """Serves ``files`` (URL path -> bytes) with Range support; records every request.

    ``cut[path] = n``: the next answer for ``path`` announces the whole body but sends ``n``
    bytes and drops the connection. ``drive[file_id] = bytes``: ``/uc?export=download&id=ID``
    answers with a Drive-style "can't scan for viruses" page whose form leads to
    ``/download?id=ID&export=download&confirm=t&uuid=...``.
    """

    def __init__(self):
        self.files, self.pages, self.cut, self.drive, self.requests = {}, {}, {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path in server.pages:
                    return self._html(server.pages[url.path])
                if url.path == "/uc" and query.get("id") in server.drive:
                    return self._page(query["id"])
                if url.path == "/download" and query.get("id") in server.drive:
                    if query.get("confirm") != "t" or query.get("uuid") != "u-1":
                        return self._page(query["id"])
                    return self._body(url.path, server.drive[query["id"]])
                data = server.files.get(urllib.parse.unquote(url.path))
                if data is None:
                    self.send_error(404)
                    return
                self._body(url.path, data)

            def _page(self, file_id):
                page = ("<html><body><p>Google Drive can't scan this file for viruses.</p>"
                        '<form id="download-form" action="/download" method="get">'
                        '<input type="submit" value="Download anyway"/>'
                        f'<input type="hidden" name="id" value="{file_id}">'
                        '<input type="hidden" name="export" value="download">'
                        '<input type="hidden" name="confirm" value="t">'
                        '<input type="hidden" name="uuid" value="u-1"></form></body></html>')
                self._html(page)

            def _html(self, page):
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self, path, data):
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.cut.pop(path, None)
                if cut is not None:
                    self.wfile.write(data[start:start + cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def paths(self):
        return [urllib.parse.unquote(urllib.parse.urlparse(p).path) for p, _ in self.requests]
