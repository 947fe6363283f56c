"""A real Label Studio server for the tests, and a client that talks to it as a person's browser does.

:class:`LabelStudioServer` starts ``label-studio start`` from its own environment
(tests/labelstudio_env.py) on a free localhost port, in a temporary data dir holding a copy of the
migrated template database, with one user (``LABEL_STUDIO_USERNAME``/``PASSWORD``) and local files
serving on (``LOCAL_FILES_SERVING_ENABLED``, ``LOCAL_FILES_DOCUMENT_ROOT=/``: the URLs alseg's export
writes). :meth:`~LabelStudioServer.stop` ends its whole process group and checks that nothing is left.

:class:`Browser` logs in through the login form (session cookie and CSRF token, no API token) and
calls the JSON API the labelling page calls.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from labelstudio_env import DATABASE, TEMPLATE, quiet_env

EMAIL = "ana@alseg.test"
PASSWORD = "alseg-labelstudio-test"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LabelStudioServer:
    """``label-studio start`` in ``workdir`` (its data, log and home), until :meth:`stop`."""

    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv, self.workdir = venv, workdir
        self.data_dir = workdir / "data"
        self.log = workdir / "label-studio.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def start(self, timeout: float = 240.0) -> None:
        self.data_dir.mkdir(parents=True)
        shutil.copy2(self.venv / TEMPLATE / DATABASE, self.data_dir / DATABASE)
        home = self.workdir / "home"  # whatever it writes under $HOME stays in the temporary folder
        home.mkdir()
        env = {
            **quiet_env(self.data_dir),
            "HOME": str(home),
            "LABEL_STUDIO_USERNAME": EMAIL,
            "LABEL_STUDIO_PASSWORD": PASSWORD,
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": "/",
        }
        cmd = [str(self.venv / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
               "--port", str(self.port)]
        started = time.monotonic()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy(started + timeout)
        self.startup_seconds = time.monotonic() - started

    def _wait_healthy(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label-studio exited with {self.process.returncode} before it answered:\n"
                                   + self.log_tail())
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if json.load(response).get("status") == "UP":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"label-studio did not answer {self.url}/health in time:\n" + self.log_tail())

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 20.0) -> None:
        """End the server's process group (SIGTERM, then SIGKILL) and check that none of it is left."""
        if self.process is None:
            return
        group = self.process.pid  # its own session: the group id is its pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(group):
                self.process.poll()  # reap the leader
                time.sleep(0.2)
            if not _group_alive(group):
                break
        self.process.wait(timeout=5)
        if _group_alive(group):
            raise RuntimeError(f"label-studio's process group {group} is still running after SIGKILL")
        self.process = None


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ApiError(RuntimeError):
    pass


class Browser:
    """A logged-in session of ``server``: cookies, CSRF token and Referer as the web page sends them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.user: dict[str, Any] = {}

    def login(self, email: str = EMAIL, password: str = PASSWORD) -> dict[str, Any]:
        """Log in through the login form; return (and keep) the user, ``/api/current-user/whoami``."""
        self.get_raw("/user/login/")  # sets the csrftoken cookie
        form = urllib.parse.urlencode({"email": email, "password": password,
                                       "csrfmiddlewaretoken": self._csrf()}).encode()
        self._send("POST", "/user/login/", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if not any(cookie.name == "sessionid" for cookie in self.jar):
            raise ApiError(f"logging in as {email} at {self.url}/user/login/ gave no session")
        self.user = self.api("GET", "/api/current-user/whoami")
        return self.user

    def _csrf(self) -> str:
        return next((cookie.value for cookie in self.jar if cookie.name == "csrftoken"), "") or ""

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers={
            "Referer": self.url + "/", "X-CSRFToken": self._csrf(), **headers})
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:2000]
            raise ApiError(f"{method} {path}: HTTP {err.code}: {detail}") from err

    def get_raw(self, path: str) -> bytes:
        return self._send("GET", path, None, {})[1]

    def api(self, method: str, path: str, payload: Any = None) -> Any:
        """Call the JSON API; return the decoded answer (None if empty)."""
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        content = self._send(method, path, body, headers)[1]
        return json.loads(content) if content.strip() else None

    def next_task(self, project: int) -> dict[str, Any] | None:
        """The next task of the labelling stream (what *Label All Tasks* opens), None when all are done."""
        try:
            return self.api("GET", f"/api/projects/{project}/next/")
        except ApiError as err:
            if "HTTP 404" in str(err):
                return None
            raise
