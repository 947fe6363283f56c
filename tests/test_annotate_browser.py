"""The annotation page in a real browser: headless Chromium answers rounds by key presses.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` package
(the ``test`` extra); .ci/run installs them. Without them they are skipped, saying what is missing. The
tests of the page's files (the core and the units' views) need no browser.
Set ``ALSEG_UPDATE_SCREENSHOT=1`` to refresh docs/annotate.png (the README's screenshot).
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from annotate_fixtures import block_regions, make_dataset, write_queries

from alseg.annotate import AnnotationServer, AnnotationSession, regions_from_label_maps
from alseg.annotate.server import static_file
from alseg.units import ROW_UNITS

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "annotate.png"


def _browser_missing() -> str | None:
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing.append("chromium (apt-get install chromium)")
    if not shutil.which("chromedriver"):
        missing.append("chromedriver (apt-get install chromium-driver)")
    return f"browser test needs {', '.join(missing)}" if missing else None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")

H, W = 48, 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "synthetic.h5", n_train=3, height=H, width=W)


@contextlib.contextmanager
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1180,720", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def serving(session: AnnotationSession) -> Iterator[AnnotationServer]:
    """Serve ``session`` in a thread; on leaving, the server must have stopped by itself (done)."""
    server = AnnotationServer(session, port=0)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.serve_until_done(poll_seconds=0.05)
        except BaseException as err:  # noqa: BLE001 (reported in the test's thread)
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield server
    thread.join(timeout=10)
    assert not thread.is_alive(), "the server did not stop after the last answer"
    assert not errors, errors


def body(driver, name: str) -> str | None:
    return driver.execute_script(f"return document.body.dataset.{name} || null;")


def wait_for_query(driver, query_id: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(
        lambda d: body(d, "ready") == "1" and body(d, "query") == query_id,
        message=f"query {query_id} was not shown (shown: {body(driver, 'query')})",
    )


def wait_done(driver) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: body(d, "done") == "1", message="the page never said done")


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    time.sleep(0.03)  # a person takes longer; measured seconds must be > 0
    ActionChains(driver).send_keys(key).perform()


def answer_round(driver, url: str, steps: list[tuple[str, str]]) -> None:
    """Open ``url`` and, for each (query shown, key), wait for the query and press the key."""
    driver.get(url)
    for query_id, key in steps:
        wait_for_query(driver, query_id)
        press(driver, key)


def read_answers_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["query_id"]: row for row in csv.DictReader(f)}


def check_answers(path: Path, expected: dict[str, str]) -> None:
    rows = read_answers_csv(path)
    assert {qid: row["answer"] for qid, row in rows.items()} == expected
    assert list(rows) == sorted(expected)  # in the order of queries.csv
    for row in rows.values():
        assert row["source"] == "human" and row["annotator"] == "tester" and row["clicks"] == "1"
        assert 0 < float(row["seconds"]) < 60


@needs_browser
def test_pixel_round_with_skip_undo_and_resume(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.keys import Keys

    monkeypatch.chdir(tmp_path)  # the page shows the path as given: a workflow-like one
    round_dir = Path("results", "synthetic_margin", "round_1")
    queries = write_queries(
        round_dir / "queries.csv",
        "pixel",
        [(0, 5, 7), (1, 20, 40), (2, 47, 0), (0, 30, 60)],
    )
    session = AnnotationSession(queries, dataset, annotator="tester")
    progress = round_dir / "answers.partial.json"
    with serving(session) as server:
        with browser() as driver:
            driver.get(server.url)
            wait_for_query(driver, "r1-000000")
            screenshot = tmp_path / "annotate.png"
            driver.save_screenshot(str(screenshot))
            assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("ALSEG_UPDATE_SCREENSHOT"):
                shutil.copyfile(screenshot, SCREENSHOT)
            keys_text = driver.find_element("id", "keymap").text
            assert "horizontal_stripes" in keys_text and "2" in keys_text
            for query_id, key in [("r1-000000", "2"), ("r1-000001", "s"), ("r1-000002", "3"),
                                  ("r1-000003", Keys.BACKSPACE), ("r1-000002", "4")]:
                wait_for_query(driver, query_id)
                press(driver, key)
            wait_for_query(driver, "r1-000003")
        # the browser is closed mid-way: nothing is lost
        saved = json.loads(progress.read_text())["answers"]
        assert [(a["query_id"], a["answer"]) for a in saved] == [
            ("r1-000000", "1"), ("r1-000001", "skip"), ("r1-000002", "3")
        ]
        assert not (round_dir / "answers.csv").exists()
        with browser() as driver:  # reopen: resumes at the first unanswered query
            driver.get(server.url)
            wait_for_query(driver, "r1-000003")
            assert body(driver, "answered") == "3"
            press(driver, "8")
            wait_done(driver)
            assert "All 4 queries answered" in driver.find_element("id", "done").text
    check_answers(
        round_dir / "answers.csv",
        {"r1-000000": "1", "r1-000001": "skip", "r1-000002": "3", "r1-000003": "7"},
    )


@needs_browser
def test_superpixel_round_outlines_regions(dataset: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    maps = block_regions(3, H, W, block=8)
    queries = write_queries(
        tmp_path / "queries.csv",
        "superpixel",
        [(0, 0), (1, 13), (2, int(maps[2, 40, 60]))],
    )
    session = AnnotationSession(queries, dataset, annotator="tester", regions=regions_from_label_maps(maps))
    with serving(session) as server, browser() as driver:
        driver.get(server.url)
        wait_for_query(driver, "r1-000000")
        assert "outlined region" in driver.find_element("id", "question").text
        # the outline is drawn: the region's border pixels on the canvas are the outline colour
        assert driver.execute_script(_OUTLINE_PROBE) > 0
        for query_id, key in [("r1-000000", "5"), ("r1-000001", Keys.SPACE), ("r1-000002", "u"),
                              ("r1-000001", Keys.SPACE)]:
            wait_for_query(driver, query_id)
            press(driver, key)
        answer_round(driver, server.url, [("r1-000002", "6")])
        wait_done(driver)
    check_answers(tmp_path / "answers.csv", {"r1-000000": "4", "r1-000001": "skip", "r1-000002": "5"})


@needs_browser
def test_binary_round_answers_yes_no(dataset: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    queries = write_queries(
        tmp_path / "queries.csv", "binary",
        [(0, 3), (1, 0), (2, 7)],
    )
    session = AnnotationSession(queries, dataset, annotator="tester")
    with serving(session) as server, browser() as driver:
        driver.get(server.url)
        wait_for_query(driver, "r1-000000")
        assert "checker" in driver.find_element("id", "question").text
        for query_id, key in [("r1-000000", "y"), ("r1-000001", "n"), ("r1-000002", Keys.BACKSPACE),
                              ("r1-000001", "2"), ("r1-000001", "y"), ("r1-000002", "s")]:
            wait_for_query(driver, query_id)
            press(driver, key)
            if key == "2":  # a class key means nothing for a binary query: still the same query
                time.sleep(0.2)
                assert body(driver, "query") == "r1-000001" and body(driver, "answered") == "1"
        wait_done(driver)
    check_answers(tmp_path / "answers.csv", {"r1-000000": "yes", "r1-000001": "yes", "r1-000002": "skip"})


@needs_browser
def test_tags_round_toggles_classes_and_submits_the_set(dataset: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    queries = write_queries(tmp_path / "queries.csv", "tags", [(0,), (1,), (2,)])
    session = AnnotationSession(queries, dataset, annotator="tester")
    with serving(session) as server, browser() as driver:
        driver.get(server.url)
        wait_for_query(driver, "r1-000000")
        assert "every class present" in driver.find_element("id", "question").text
        for key in ("4", "2", "7", "7", Keys.BACKSPACE):  # mark 3, 1, 6; unmark 6; take back the mark of 1
            press(driver, key)
        marked = driver.execute_script(
            "return [...document.querySelectorAll('#keymap li.on')].map((li) => li.dataset.answer);")
        assert marked == ["3"]  # the key list shows what is marked
        press(driver, "1")
        press(driver, Keys.ENTER)  # submits 0 and 3
        wait_for_query(driver, "r1-000001")
        press(driver, Keys.ENTER)  # nothing marked: Enter does not say "no class is here"
        time.sleep(0.2)
        assert body(driver, "query") == "r1-000001" and body(driver, "answered") == "1"
        for query_id, key in [("r1-000001", "n"), ("r1-000002", Keys.BACKSPACE), ("r1-000001", "3"),
                              ("r1-000001", Keys.ENTER), ("r1-000002", "s")]:
            wait_for_query(driver, query_id)
            press(driver, key)
        wait_done(driver)
    rows = read_answers_csv(tmp_path / "answers.csv")
    assert {qid: (row["answer"], row["clicks"]) for qid, row in rows.items()} == {
        "r1-000000": ("0;3", "3"), "r1-000001": ("2", "2"), "r1-000002": ("skip", "1")}
    assert all(row["source"] == "human" and 0 < float(row["seconds"]) < 60 for row in rows.values())


@contextlib.contextmanager
def listening(session: AnnotationSession) -> Iterator[AnnotationServer]:
    """Serve ``session`` in a thread until the block ends (no answers needed)."""
    server = AnnotationServer(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def get(server: AnnotationServer, path: str, host: str | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of ``GET path``."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host or f"127.0.0.1:{server.port}"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_unit_views_are_served(dataset: Path, tmp_path: Path) -> None:
    queries = write_queries(tmp_path / "queries.csv", "pixel", [(0, 5, 7)])
    session = AnnotationSession(queries, dataset, annotator="tester")
    assert session.info()["unit_scripts"] == {"pixel": "/unit/pixel.js"}
    with listening(session) as server:
        status, content_type, script = get(server, "/unit/pixel.js")
        assert status == 200 and content_type.startswith("text/javascript")
        assert b'alseg.registerUnit("pixel"' in script
        # a unit that is a package keeps its view in the package's folder
        status, content_type, script = get(server, "/unit/superpixel.js")
        assert status == 200 and b'alseg.registerUnit("superpixel"' in script
        for missing in ("/unit/nothing.js", "/unit/image.js"):  # unknown; a unit not answered on the page
            status, content_type, body = get(server, missing)
            assert status == 404 and "error" in json.loads(body), missing
        status, _, _ = get(server, "/unit/pixel.js", host="evil.example:80")
        assert status == 403


def test_app_js_is_the_same_for_every_unit() -> None:
    core = (static_file("app.js") or b"").decode("utf-8")
    assert "registerUnit" in core
    for name in (name for name, unit in ROW_UNITS.items() if unit.page_script):
        quoted = re.findall(rf"""["'`]{re.escape(name)}["'`]""", core)
        assert not quoted, (
            f"app.js names the {name!r} unit ({quoted}): what a unit shows and which keys answer it belong "
            f"in its view (the unit's page_script beside its Python module), not in the page's core"
        )
    for field in ("region_url", "class_name", "yes_keys", "no_keys", ".unit ==="):
        assert field not in core, f"app.js uses {field!r}, a detail of one unit: it belongs in that unit's view"


# Counts canvas pixels whose colour is the region outline's (#ffd166) on the main view.
_OUTLINE_PROBE = """
const c = document.getElementById('view');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) {
  if (d[i] === 0xff && d[i + 1] === 0xd1 && d[i + 2] === 0x66) n++;
}
return n;
"""

