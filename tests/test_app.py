"""The soft-label web page: its numbers, the CLI command, the Space, and the page in headless Chromium."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from affectnetplus_hf.emotions import EMOTIONS
from affectnetplus_hf.subsets import assign_subsets, hard_label_ranks

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def assets(tmp_path_factory, make_tiny_labeler):
    from affectnetplus_hf.app import load_labeler, write_sample_faces

    root = tmp_path_factory.mktemp("app")
    model = make_tiny_labeler(root / "model")
    faces = write_sample_faces(root / "faces", n=3)
    return {"root": root, "model": model, "labeler": load_labeler(model), "faces": faces}


def _predicted(labeler, image) -> np.ndarray:
    import torch

    with torch.no_grad():
        return labeler.predict(image).soft_label[0].float().numpy()


# ---------------------------------------------------------------------------------------------- numbers


def test_sample_faces_are_distinct_images(assets):
    faces = assets["faces"]
    assert len(faces) == 3 and len(set(faces)) == 3
    assert all(Path(face).is_file() and Path(face).suffix in (".jpg", ".png") for face in faces)


def test_analyse_image_is_labeler_predict_with_ranking_and_subset(assets):
    from affectnetplus_hf.app import TOP_EMOTION, analyse_image, analyse_scores, predict_scores

    labeler, face = assets["labeler"], assets["faces"][0]
    expected = _predicted(labeler, face)
    result = analyse_image(labeler, face)
    np.testing.assert_array_equal(np.asarray(result["soft_label"], dtype=np.float32), expected)
    assert result["ranking"] == sorted(range(8), key=lambda i: -expected[i])
    assert result["hard_label"] == result["top"] == int(np.argmax(expected)) and result["rank"] == 1
    assert result["subset"] == "easy"
    for key in ("spread", "ebc", "au"):
        assert len(result[key]) == 8
    assert result["dist"] is None and result["calibrated"] is None  # EBC + AU, not calibrated
    scores = predict_scores(labeler, face)
    for hard, name in enumerate(EMOTIONS):
        for chosen in (hard, name):
            shown = analyse_scores(scores, chosen)
            assert shown["hard_label"] == hard and shown["hard_label_name"] == name
            assert shown["rank"] == hard_label_ranks(expected[None], [hard])[0]
            assert shown["subset"] == assign_subsets(expected[None], [hard])[0]
    assert analyse_scores(scores, TOP_EMOTION)["hard_label"] == result["top"]
    with pytest.raises(ValueError, match="unknown hard label"):
        analyse_scores(scores, "Bored")
    with pytest.raises(ValueError, match="0..7"):
        analyse_scores(scores, 8)


def test_views_show_the_values(assets):
    from affectnetplus_hf.app import analyse_image, family_figure, soft_label_figure, summary_html, values_html

    labeler, face = assets["labeler"], assets["faces"][1]
    result = analyse_image(labeler, face, "Contempt")
    table = values_html(result)
    shown = dict(re.findall(r'id="soft-label-(\w+)" data-value="[^"]*">([0-9.]+)<', table))
    assert list(shown) == [EMOTIONS[i] for i in result["ranking"]]  # ranking order
    assert all(re.fullmatch(r"\d\.\d{4}", text) for text in shown.values())
    expected = _predicted(labeler, face)
    for index, emotion in enumerate(EMOTIONS):
        assert abs(float(shown[emotion]) - expected[index]) <= 5e-5 + 1e-9
    assert "class=hard-label" in table and "Contempt ← hard label" in table
    for key in ("spread", "ebc", "au"):
        assert len(re.findall(rf'id="{key}-\w+"', table)) == 8
    summary = summary_html(result)
    assert f'<b id="subset-name">{result["subset"]}</b>' in summary and "Contempt" in summary
    bars = soft_label_figure(result).axes[0].patches
    assert sorted(round(bar.get_width(), 6) for bar in bars) == sorted(round(float(v), 6) for v in expected)
    assert len(family_figure(result).axes[0].patches) == 16  # EBC + AU bars
    assert "Upload a photo" in values_html(None)


def test_build_app_makes_blocks(assets):
    gr = pytest.importorskip("gradio")
    from affectnetplus_hf.app import build_app

    blocks = build_app(assets["labeler"], assets["faces"])
    assert isinstance(blocks, gr.Blocks)
    ids = {getattr(block, "elem_id", None) for block in blocks.blocks.values()}
    assert {
        "face-input",
        "upload-button",
        "face-mode",
        "faces-image",
        "face-choice",
        "faces-list",
        "message",
        "hard-label",
        "soft-label-chart",
        "soft-label-table",
        "family-chart",
    } <= ids


# ---------------------------------------------------------------------------------------------- CLI and Space


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=path,
        GRADIO_ANALYTICS_ENABLED="False",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "affectnetplus_hf", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=REPO,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (("/nonexistent/soft_labeler",), "does not exist"),
        (("MODEL", "--port", "0"), "--port must be in 1..65535"),
        (("MODEL", "--examples", "-1"), "--examples must be >= 0"),
        (("MODEL", "--detector", "nope"), "unknown face detector 'nope'"),
    ],
)
def test_cli_argument_errors_are_one_line(assets, args, message):
    args = tuple(str(assets["model"]) if a == "MODEL" else a for a in args)
    result = _cli("app", *args)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ERROR" in lines[0] and message in lines[0], result.stderr


def test_cli_help_lists_app():
    from affectnetplus_hf.cli import build_parser

    help_text = build_parser().format_help()
    assert "app" in help_text and "web page" in help_text


def test_space_calls_the_same_launcher(assets, monkeypatch):
    from affectnetplus_hf import app

    spec = importlib.util.spec_from_file_location("space_app", REPO / "spaces" / "app.py")
    space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(space)
    calls = []
    monkeypatch.setattr(app, "launch_app", lambda model, **kwargs: calls.append((model, kwargs)))
    monkeypatch.setenv("MODEL_DIR", str(assets["model"]))
    space.main()
    assert calls == [(str(assets["model"]), {"device": "cpu"})]
    monkeypatch.delenv("MODEL_DIR")
    with pytest.raises(SystemExit, match="MODEL_DIR"):
        space.main()

    readme = (REPO / "spaces" / "README.md").read_text(encoding="utf-8")
    header = readme.split("---")[1]
    assert "sdk: gradio" in header and "app_file: app.py" in header
    # the Space installs the package's own dependencies
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    listed = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.MULTILINE | re.DOTALL)[1]
    dependencies = re.findall(r'"([^"]+)"', listed)
    wanted = {re.split(r"[<>=!~\[ ;]", dep)[0].lower() for dep in dependencies}
    assert "torch" in wanted and len(wanted) > 5
    lines = (REPO / "spaces" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    listed = {re.split(r"[<>=!~\[ ;]", line)[0].lower() for line in lines if line and not line.startswith("#")}
    assert wanted <= listed, wanted - listed


# ---------------------------------------------------------------------------------------------- the page in Chromium


def _browser_or_skip():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if importlib.util.find_spec("gradio") is None:
        missing.append("the gradio package")
    if missing:
        reason = (
            f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver; "
            "pip install -e '.[dev,app]')"
        )
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 150) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"affectnetplus app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"affectnetplus app did not answer on {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _chrome(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--window-size=1280,1300",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(
        service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")), options=options
    )


def _shown_values(driver) -> dict[str, str]:
    """The soft-label cells of the page's table, emotion → text, in the order shown."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        cells = driver.find_elements(By.CSS_SELECTOR, "#soft-label-values td.soft-label")
        return {cell.get_attribute("id").removeprefix("soft-label-"): cell.text for cell in cells}
    except StaleElementReferenceException:  # the table is being replaced
        return {}


def _predict_rows(model: Path, photo: Path) -> list[dict]:
    """``affectnetplus predict MODEL PHOTO --faces all``'s rows."""
    from affectnetplus_hf.models.inference import predict_files

    return predict_files(str(model), [str(photo)], faces="all").to_pylist()


def test_analyse_upload_gives_every_face_as_predict(assets, tmp_path, face_photos):
    from affectnetplus_hf.app import DETECT_FACES, WHOLE_IMAGE, analyse_upload, faces_html, largest_face, photo_message
    from affectnetplus_hf.faces import FaceFinder
    from affectnetplus_hf.images import BadImageError

    photo_path = tmp_path / "pair.png"
    face_photos.pair.save(photo_path)
    finder = FaceFinder("auto", faces="all", processor=assets["labeler"].image_processor)
    photo = analyse_upload(assets["labeler"], finder, photo_path, DETECT_FACES)
    rows = _predict_rows(assets["model"], photo_path)
    assert [face["number"] for face in photo["faces"]] == [1, 2] and len(rows) == 2
    for face, row in zip(photo["faces"], rows):
        assert face["box"] == tuple(row[c] for c in ("x0", "y0", "x1", "y1"))
        np.testing.assert_allclose(face["scores"]["soft_label"], [row[e] for e in EMOTIONS], atol=1e-6)
    assert largest_face(photo["faces"]) in (1, 2) and faces_html(photo).count('class="face"') == 2
    assert photo_message(photo, "pair.png") == (
        f"2 faces found in pair.png (the {finder.detector_name} detector), numbered from the left; choose one "
        "to see its soft label.",
        False,
    )
    crop = analyse_upload(assets["labeler"], finder, assets["faces"][0], WHOLE_IMAGE)
    np.testing.assert_array_equal(
        np.asarray(crop["faces"][0]["scores"]["soft_label"], dtype=np.float32),
        _predicted(assets["labeler"], assets["faces"][0]),
    )
    empty = tmp_path / "empty.png"
    from PIL import Image

    Image.new("RGB", (320, 240), (120, 120, 120)).save(empty)
    text, problem = photo_message(analyse_upload(assets["labeler"], finder, empty), "empty.png")
    assert problem and text.startswith("No face found in empty.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(BadImageError, match="^broken.jpg: not a readable image"):
        analyse_upload(assets["labeler"], finder, tmp_path / "broken.jpg")


def _upload(driver, wait, path) -> None:
    """Upload ``path`` with the page's upload button."""
    from selenium.webdriver.common.by import By

    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#face-input input[type=file]"))
    driver.find_element(By.CSS_SELECTOR, "#face-input input[type=file]").send_keys(str(path))


def _click_face(driver, wait, number: int) -> None:
    from selenium.webdriver.common.by import By

    face_label = f'//*[@id="face-choice"]//label[normalize-space()="face {number}"]'
    wait.until(lambda d: d.find_element(By.XPATH, face_label)).click()


@pytest.mark.slow
def test_page_in_headless_chromium_shows_labeler_predict(assets, tmp_path, face_photos):
    _browser_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "affectnetplus_hf",
                "app",
                str(assets["model"]),
                "--port",
                str(port),
                "--examples",
                "3",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**_env(), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")},
        )
    driver = None
    try:
        # while the server starts: a photo with two faces and what `predict --faces all` says of it
        pair = tmp_path / "pair.png"
        face_photos.pair.save(pair)
        rows = _predict_rows(assets["model"], pair)
        assert len(rows) == 2
        _wait_for_server(url, process, log)
        driver = _chrome(tmp_path)
        driver.get(url)
        wait = WebDriverWait(driver, 60)

        # two faces: both boxes listed (left to right, as predict), the chosen face's soft label as predict's
        _upload(driver, wait, pair)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces-found li.face")) == 2)
        boxes = [
            [float(v) for v in item.get_attribute("data-box").split(",")]
            for item in driver.find_elements(By.CSS_SELECTOR, "#faces-found li.face")
        ]
        assert boxes == [[round(row[c], 2) for c in ("x0", "y0", "x1", "y1")] for row in rows]
        assert "2 faces found in pair.png" in driver.find_element(By.ID, "page-message").text
        assert driver.find_elements(By.CSS_SELECTOR, "#faces-image img")  # the photo with its numbered boxes
        wait.until(lambda d: len(_shown_values(d)) == 8)  # the largest face's soft label first
        for number in (2, 1):
            _click_face(driver, wait, number)
            wanted = {emotion: f"{rows[number - 1][emotion]:.4f}" for emotion in EMOTIONS}
            wait.until(lambda d: _shown_values(d) == wanted)
            expected = np.array([rows[number - 1][e] for e in EMOTIONS])
            assert list(_shown_values(driver)) == [EMOTIONS[i] for i in np.argsort(-expected, kind="stable")]
        assert driver.find_element(By.ID, "subset-name").text == "easy"  # default hard label: the top emotion
        assert len(driver.find_elements(By.CSS_SELECTOR, "#family-chart img")) == 1
        driver.save_screenshot(str(tmp_path / "app.png"))
        assert (tmp_path / "app.png").stat().st_size > 10_000
        shown = _shown_values(driver)

        # picking a sample face (a face crop, labelled whole): the server wrote the same 3 faces (same seed)
        examples = driver.find_elements(By.CSS_SELECTOR, "#sample-faces button.gallery-item")
        assert len(examples) == 3
        examples[1].click()
        second = _predicted(assets["labeler"], assets["faces"][1])
        wanted = {emotion: f"{value:.4f}" for emotion, value in zip(EMOTIONS, second)}
        wait.until(lambda d: len(now := _shown_values(d)) == 8 and now != shown)
        wait.until(lambda d: _shown_values(d) == wanted)

        # choosing the hard label: its rank and subset follow
        hard = EMOTIONS.index("Contempt")
        driver.find_element(By.CSS_SELECTOR, "#hard-label input").click()  # opens the options
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#hard-label li[aria-label="Contempt"]')).click()
        rank = str(hard_label_ranks(second[None], [hard])[0])
        wait.until(lambda d: d.find_element(By.ID, "hard-label-name").text == "Contempt")
        assert driver.find_element(By.ID, "hard-label-rank").text == rank
        assert driver.find_element(By.ID, "subset-name").text == assign_subsets(second[None], [hard])[0]
        driver.save_screenshot(str(tmp_path / "app-contempt.png"))

        # the two-face photo again (another name: a file input ignores the same file picked twice), then an
        # unreadable file: a one-line message, and nothing of the photo left
        again = tmp_path / "pair-again.png"
        again.write_bytes(pair.read_bytes())
        _upload(driver, wait, again)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces-found li.face")) == 2)
        wait.until(lambda d: len(_shown_values(d)) == 8)
        broken = tmp_path / "broken.jpg"
        broken.write_bytes(b"this is not a JPEG")
        _upload(driver, wait, broken)
        wait.until(lambda d: "Could not read the upload" in d.find_element(By.ID, "page-message").text)
        message = driver.find_element(By.ID, "page-message").text
        assert "broken.jpg: not a readable image" in message and "\n" not in message and "gradio" not in message
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#soft-label-values td.soft-label"))
        assert not driver.find_elements(By.CSS_SELECTOR, "#faces-found li.face")
        assert not driver.find_elements(By.CSS_SELECTOR, "#soft-label-chart img, #family-chart img, #faces-image img")
        assert not driver.find_element(By.ID, "summary-line").text
        driver.save_screenshot(str(tmp_path / "app-broken.png"))
    finally:
        if driver is not None:
            driver.quit()
        process.send_signal(signal.SIGINT)  # as Ctrl-C: the server closes and removes its sample faces
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text()
    problems = [line for line in text.splitlines() if "broken.jpg" in line]
    assert len(problems) == 1 and "WARNING" in problems[0] and "Traceback" not in text, text[-3000:]


# ------------------------------------------------------------------------------------------ stopping and page errors


def test_sigterm_cleans_up_as_ctrl_c(assets, tmp_path):
    """``kill`` (SIGTERM) stops ``affectnetplus app`` as Ctrl-C does: the server closes, its temporary
    sample folder is removed, and the process exits 0 without a traceback."""
    pytest.importorskip("gradio")
    port, temp = _free_port(), tmp_path / "tmp"
    temp.mkdir()
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "affectnetplus_hf",
                "app",
                str(assets["model"]),
                "--port",
                str(port),
                "--examples",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**_env(), "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")},
        )
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/", process, log)
        assert len(list(temp.glob("affectnetplus-app-*"))) == 1  # the sample faces, while serving
        deadline = time.monotonic() + 30
        while "public link" not in log.read_text() and time.monotonic() < deadline:  # launch() is done
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        # as Ctrl-C: 0 once serving (Gradio closes the server), 130 ("interrupted") if still starting
        assert process.wait(timeout=30) in (0, 130), log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert list(temp.glob("affectnetplus-app-*")) == [] and "Traceback" not in text, text[-3000:]


def test_page_api_errors_are_logged_in_one_line(assets, tmp_path, monkeypatch, capfd, caplog):
    """A non-image sent to the page's API (the upload and the sample-face events): one log line naming the
    file, the page's one-line message, no traceback in the server log (its traceback only at DEBUG)."""
    import logging

    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file

    from affectnetplus_hf.app import launch_app

    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not an image")
    port = _free_port()
    blocks = launch_app(assets["labeler"], host="127.0.0.1", port=port, n_examples=0, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for level, endpoint in (
            (logging.INFO, "/analyse_upload_event"),
            (logging.INFO, "/analyse_sample_event"),
            (logging.DEBUG, "/analyse_sample_event"),
        ):
            caplog.clear()
            capfd.readouterr()
            with caplog.at_level(level, logger="affectnetplus_hf.app"):
                result = client.predict(handle_file(str(bad)), api_name=endpoint)
            assert "Could not read the upload: notes.txt: not a readable image" in result[-1], result
            records = [r for r in caplog.records if r.name == "affectnetplus_hf.app" and "notes.txt" in r.getMessage()]
            assert len(records) == 1 and records[0].levelname == "WARNING", caplog.text
            assert "\n" not in records[0].getMessage()
            assert bool(records[0].exc_info) == (level == logging.DEBUG)  # the traceback only at DEBUG
            assert "Traceback" not in capfd.readouterr().err
    finally:
        blocks.close()
