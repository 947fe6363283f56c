"""The local web server of the annotation page (standard library only, bound to 127.0.0.1).

Endpoints (JSON unless said otherwise)::

    GET  /                      the page (static/index.html)
    GET  /static/<file>         app.js (the core of the page), style.css
    GET  /unit/<unit>.js        the view of a query unit (text/javascript): its ``page_script``
    GET  /api/session           classes, class keys, command keys, annotator, file names, total
    GET  /api/state             progress, the query to show, the last answer
    GET  /api/image/<i>.png     pool image i (PNG)
    GET  /api/region/<k>        region of superpixel query k: {"bbox", "bits", "pixels"}
    POST /api/answer            {"query_id", "answer", "seconds"} -> state
    POST /api/undo              {} -> state

Errors come back as ``{"error": message}`` with status 400 (malformed request), 404, 409 (an answer
the session refuses, e.g. for a query that is no longer the current one) or 500.
"""

from __future__ import annotations

import inspect
import json
import re
import threading
import time
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alseg.annotate.session import AnnotationError, AnnotationSession
from alseg.data import DatasetError
from alseg.regions import RegionError
from alseg.units import unit_of_row

HOST = "127.0.0.1"
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_IMAGE = re.compile(r"^/api/image/(\d+)\.png$")
_REGION = re.compile(r"^/api/region/(\d+)$")
_UNIT_SCRIPT = re.compile(r"^/unit/([A-Za-z0-9_-]+)\.js$")
_MAX_BODY = 64 * 1024


def static_file(name: str) -> bytes | None:
    """The bytes of a file of the page (``static/<name>``), or None if there is no such file."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+\.[a-z]+", name):
        return None
    entry = resources.files("alseg.annotate") / "static" / name
    return entry.read_bytes() if entry.is_file() else None


def unit_script(row_unit: str) -> bytes | None:
    """The view on the page of the queries whose ``unit`` is ``row_unit``: the unit's ``page_script``, a file
    beside its Python module. None for an unknown unit, a unit not answered on the page, or a missing file."""
    try:
        unit = unit_of_row(row_unit)
    except ValueError:
        return None
    name = unit.page_script
    if not name or Path(name).name != name:
        return None
    path = Path(inspect.getfile(type(unit))).parent / name
    return path.read_bytes() if path.is_file() else None


class AnnotationServer(ThreadingHTTPServer):
    """Serves one :class:`AnnotationSession` on ``127.0.0.1:port`` (port 0: a free one).

    Use :meth:`serve_until_done`: it returns once every query is answered and ``answers.csv`` is
    written, or raises ``KeyboardInterrupt`` on Ctrl-C (progress is saved after every answer).
    """

    daemon_threads = False  # server_close() waits for requests in flight (the last answer's reply)
    allow_reuse_address = True

    def __init__(self, session: AnnotationSession, port: int = 0) -> None:
        self.session = session
        super().__init__((HOST, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def serve_until_done(self, open_browser: bool = False, poll_seconds: float = 0.2) -> None:
        """Serve requests until the session is done, then stop (closing the socket)."""
        thread = threading.Thread(target=self.serve_forever, name="alseg-annotate", daemon=True)
        thread.start()
        try:
            if open_browser:
                webbrowser.open(self.url)
            while not self.session.done.wait(poll_seconds):
                pass
            time.sleep(poll_seconds)  # let the page fetch anything it still asks for
        finally:
            self.shutdown()
            self.server_close()
            thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: AnnotationServer
    server_version = "alseg-annotate"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the terminal shows the URL and the result only

    # -- routing -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        session = self.server.session
        try:
            if path in ("/", "/index.html"):
                self._send_static("index.html")
            elif path.startswith("/static/"):
                self._send_static(path.removeprefix("/static/"))
            elif match := _UNIT_SCRIPT.match(path):
                self._send_unit_script(match.group(1))
            elif path == "/api/session":
                self._send_json(session.info())
            elif path == "/api/state":
                self._send_json(session.state())
            elif match := _IMAGE.match(path):
                self._send(HTTPStatus.OK, session.pool.png(int(match.group(1))), "image/png", cache=True)
            elif match := _REGION.match(path):
                self._send_json(session.region(int(match.group(1))))
            else:
                self._send_error(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        except AnnotationError as err:
            self._send_error(HTTPStatus.NOT_FOUND, str(err))
        except (RegionError, DatasetError) as err:
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, str(err))

    def do_POST(self) -> None:
        if not self._host_ok() or not self._origin_ok():
            return
        path = urlsplit(self.path).path
        session = self.server.session
        try:
            body = self._read_json()
            if path == "/api/answer":
                self._send_json(
                    session.answer(str(body["query_id"]), str(body["answer"]), body["seconds"])
                )
            elif path == "/api/undo":
                self._send_json(session.undo())
            else:
                self._send_error(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
        except AnnotationError as err:
            self._send_error(HTTPStatus.CONFLICT, str(err))
        except KeyError as err:
            self._send_error(HTTPStatus.BAD_REQUEST, f"the request lacks {err}")
        except (ValueError, TypeError) as err:
            self._send_error(HTTPStatus.BAD_REQUEST, str(err))
        except (OSError, RegionError) as err:
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, str(err))

    # -- checks --------------------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        """Refuse requests for other host names (DNS rebinding)."""
        host = self.headers.get("Host", "")
        if host in (f"{HOST}:{self.server.port}", f"localhost:{self.server.port}"):
            return True
        self._send_error(HTTPStatus.FORBIDDEN, f"unexpected Host {host!r}")
        return False

    def _origin_ok(self) -> bool:
        """Refuse answers posted by other web sites (the browser sends their Origin)."""
        origin = self.headers.get("Origin")
        if origin is None or origin in (f"http://{HOST}:{self.server.port}", f"http://localhost:{self.server.port}"):
            return True
        self._send_error(HTTPStatus.FORBIDDEN, f"unexpected Origin {origin!r}")
        return False

    def _read_json(self) -> dict[str, Any]:
        if self.headers.get_content_type() != "application/json":
            raise ValueError("requests must be application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request too large")
        body = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(body, dict):
            raise TypeError("request body must be a JSON object")
        return body

    # -- responses -----------------------------------------------------------------------------------

    def _send_static(self, name: str) -> None:
        content = static_file(name)
        if content is None:
            self._send_error(HTTPStatus.NOT_FOUND, f"no such file: {name}")
            return
        suffix = name[name.rfind(".") :]
        self._send(HTTPStatus.OK, content, _STATIC_TYPES.get(suffix, "application/octet-stream") + "; charset=utf-8")

    def _send_unit_script(self, row_unit: str) -> None:
        content = unit_script(row_unit)
        if content is None:
            self._send_error(HTTPStatus.NOT_FOUND, f"no view of {row_unit!r} queries")
            return
        self._send(HTTPStatus.OK, content, "text/javascript; charset=utf-8")

    def _send_json(self, obj: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send_json({"error": message}, status)

    def _send(self, status: HTTPStatus, content: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(content)
