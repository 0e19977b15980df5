"""The review page (``python -m mmbehave.review``): the queue in its order, every decision written at once to
<stem>_reviewed.csv and kept when two tabs write, media a browser plays (camera AVIs transcoded), bad reviewed
tables refused naming the rows, and the page itself in a real headless Chromium driven through the keyboard.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (the test
extra): ``.ci/run`` installs the first two when missing; locally ``apt-get install chromium chromium-driver``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import pandas as pd
import pytest
from helpers import compose_config, free_port, user_error
from media import FIELD_FORMATS, write_media

from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.reviewing.decisions import DecisionStore, check_decisions, read_decisions
from mmbehave.reviewing.media import MediaCache
from mmbehave.reviewing.queue import read_queue

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
AVI = next(fmt for fmt in FIELD_FORMATS if fmt.suffix == ".avi")
SETTINGS = PreprocessSettings(num_frames=4, image_size=32, frame_window=None, sample_rate=16000, clip_seconds=1.0,
                              n_mels=32, n_fft=400, hop_length=160)


@pytest.fixture(scope="module")
def predicted(trained_run, synthetic_root, tmp_path_factory) -> Path:
    """predict ... review=true over five clips, one of them a camera AVI: the queue's path."""
    from mmbehave.predicting.run import run_prediction

    folder = tmp_path_factory.mktemp("review_clips")
    clips = folder / "clips"
    clips.mkdir()
    for source in sorted((synthetic_root / "raw" / "videos").glob("test_*.mp4"))[:4]:
        shutil.copy(source, clips / source.name)
    write_media(clips / "camera_7.avi", AVI)
    run_prediction(compose_config([f"checkpoint={trained_run.checkpoint}", f"input={clips}",
                                   f"output={folder / 'season.csv'}", "review=true", "num_workers=0"],
                                  config_name="predict"))
    return folder / "season_review.csv"


def queue_of(predicted: Path, trained_run):
    from mmbehave.checkpoints.files import read_checkpoint

    return read_queue(predicted, None, read_checkpoint(trained_run.checkpoint)["classes"])


def test_the_queue_keeps_its_order_and_reads_every_heads_answers_beside_it(predicted, trained_run):
    queue = queue_of(predicted, trained_run)
    table = pd.read_csv(predicted, dtype=str, keep_default_na=False)
    assert [clip.path for clip in queue.clips] == list(table["path"])
    assert queue.heads == ["species", "behavior"]            # the queue's own head first, the others from season.csv
    assert all(len(clip.answers["behavior"]) == 3 and clip.model_sha256 for clip in queue.clips)
    assert queue.reviewed_path == predicted.with_name("season_reviewed.csv")
    by_predictions = read_queue(None, predicted.with_name("season.csv"))
    margins = [clip.answers["species"][0][1] - clip.answers["species"][1][1] for clip in by_predictions.clips]
    assert margins == sorted(margins)                         # a bare predictions table: least certain first


def test_two_tabs_keep_each_others_decisions_and_nothing_else_changes(predicted, trained_run, tmp_path):
    queue_file = tmp_path / predicted.name
    for name in (predicted.name, "season.csv"):
        shutil.copy(predicted.with_name(name), tmp_path / name)
    before = {name: (tmp_path / name).read_bytes() for name in (predicted.name, "season.csv")}
    queue = queue_of(queue_file, trained_run)
    first, second = DecisionStore(queue), DecisionStore(queue)  # two tabs: each holds only what it wrote
    first.record(queue.clips[0], "species", "accept", "", "ana")
    second.record(queue.clips[1], "species", "relabel", queue.classes["species"][0], "ben")
    first.record(queue.clips[0], "behavior", "relabel", queue.classes["behavior"][-1], "ana")
    second.record(queue.clips[2], "species", "unsure", "", "ben")   # said of the clip: a row per head
    table = read_decisions(queue.reviewed_path)
    assert len(table) == 5 and set(table["reviewer"]) == {"ana", "ben"}
    first.record(queue.clips[0], "species", "relabel", queue.classes["species"][-1], "ana")  # changing one's mind
    again = read_decisions(queue.reviewed_path)
    assert len(again) == 5
    row = again[(again["path"] == queue.clips[0].path) & (again["head"] == "species")].iloc[0]
    assert (row["decision"], row["answer"], row["model_answer"]) == (
        "relabel", queue.classes["species"][-1], queue.clips[0].answers["species"][0][0])
    assert {name: (tmp_path / name).read_bytes() for name in before} == before   # the inputs are only read


def test_a_reviewed_table_with_clips_outside_the_queue_or_unknown_classes_is_refused_naming_the_rows(
        predicted, trained_run, tmp_path):
    queue = queue_of(predicted, trained_run)
    good = {"clip_id": "x", "path": queue.clips[0].path, "head": "species", "model_answer": "", "answer":
            queue.classes["species"][0], "decision": "relabel", "reviewer": "r", "time": "", "model_sha256": ""}
    table = pd.DataFrame([good, {**good, "path": "/elsewhere/clip.mp4"}, {**good, "answer": "unicorn"}])
    with pytest.raises(Exception) as refused:
        check_decisions(table, tmp_path / "r.csv", queue)
    message = str(refused.value)
    assert "row(s) 3 name clips not in season_review.csv" in message
    assert "row(s) 4 name classes the model does not know (e.g. 'unicorn'" in message
    assert "\n" not in message
    check_decisions(table.iloc[[0, 2]], tmp_path / "r.csv", queue, allow_new_classes=True)  # allowed when asked


def test_camera_avis_get_a_preview_the_browser_plays_and_mp4s_are_served_as_they_are(tmp_path):
    cache = MediaCache(tmp_path / "media", SETTINGS)
    avi = write_media(tmp_path / "cam.avi", AVI)
    preview = cache.file(avi, "video")
    assert preview.parent.parent == tmp_path / "media" and preview.suffix == ".webm"
    with av.open(str(preview)) as container:
        assert container.streams.video[0].codec_context.name == "vp8"
        assert sum(1 for _ in container.decode(video=0)) == round(AVI.fps * AVI.seconds)
    assert cache.file(avi, "video").stat().st_mtime_ns == preview.stat().st_mtime_ns   # made once, then cached
    mp4 = write_media(tmp_path / "cam.mp4", next(fmt for fmt in FIELD_FORMATS if fmt.name == "mov_h264_aac"))
    assert cache.file(mp4, "video") == mp4
    import wave

    with wave.open(str(cache.file(avi, "audio"))) as sound:
        assert (sound.getframerate(), sound.getnframes()) == (16000, 16000)   # the whole second, at the model's rate
    assert cache.file(avi, "frames").stat().st_size > 0 and cache.file(avi, "spectrogram").read_bytes()[:4] == b"\x89PNG"


def test_a_taken_port_is_one_line_before_anything_serves(predicted, trained_run):
    from mmbehave.reviewing.serve import bound_socket

    taken = bound_socket("127.0.0.1", 0)
    port = taken.getsockname()[1]
    taken.listen()
    try:
        message = user_error(lambda: bound_socket("127.0.0.1", port))
    finally:
        taken.close()
    assert f"port={port}: cannot listen on 127.0.0.1:{port}" in message and "port=0" in message


@contextlib.contextmanager
def review_server_on(queue: Path, checkpoint: Path, tmp_path: Path):
    """``python -m mmbehave.review`` on ``queue``, as a user starts it: its address, while it serves."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mmbehave.review", f"queue={queue}", f"checkpoint={checkpoint}",
                               f"port={port}", "reviewer=tester", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "api/state", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                raise AssertionError(f"the review server did not start:\n{server.stdout.read()}") from None
            time.sleep(0.3)
    try:
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.fixture
def review_server(predicted, trained_run, tmp_path):
    """The server on a copy of the queue: (its address, the queue copy)."""
    for name in (predicted.name, "season.csv"):
        shutil.copy(predicted.with_name(name), tmp_path / name)
    with review_server_on(tmp_path / predicted.name, trained_run.checkpoint, tmp_path) as url:
        yield url, tmp_path / predicted.name


@pytest.mark.slow
@pytest.mark.infra
@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver (.ci/run does)")
def test_in_chromium_the_clip_plays_a_keyboard_decision_lands_and_a_reload_shows_it_done(review_server, tmp_path):
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    url, queue_file = review_server
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1400,900",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # The page redraws its answers after every decision: read text in one script call (never a stale element)
        wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))

        def text(selector: str) -> str:
            return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
                                         selector)

        driver.get(url)
        wait.until(lambda d: text("#clip-name").startswith("1. "))
        wait.until(lambda d: d.execute_script("return document.getElementById('video').currentTime") > 0.2)
        choices = driver.execute_script("return [...document.querySelectorAll('.head[data-head=behavior] .choice')]"
                                        ".map(b => b.textContent)")
        picked = choices[2].split(". ", 1)[1].split(" ")[0]     # "3. walking 0.123" -> walking
        ActionChains(driver).send_keys("a").perform()           # accept the species head's top answer
        wait.until(lambda d: "— accept" in text(".head[data-head=species] h3"))
        ActionChains(driver).send_keys("3").perform()           # behaviour: the third choice
        wait.until(lambda d: text("#clip-name").startswith("2. "))  # done: on to the next clip
        reviewed = read_decisions(queue_file.with_name("season_reviewed.csv"))
        first = pd.read_csv(queue_file, dtype=str, keep_default_na=False).iloc[0]
        decided = {row["head"]: row for _, row in reviewed.iterrows() if row["path"] == first["path"]}
        assert decided["species"]["decision"] == "accept" and decided["species"]["answer"] == first["label"]
        assert (decided["behavior"]["answer"], decided["behavior"]["reviewer"]) == (picked, "tester")
        driver.get_screenshot_as_file(str(tmp_path / "review_page.png"))
        driver.refresh()
        wait.until(lambda d: text("#clip-name").startswith("2. "))  # continues where it stopped
        assert "done" in driver.execute_script("return document.querySelector(\"#queue li[data-index='0']\").className")
        assert text("#progress").startswith("1 of 5 clips reviewed")
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#queue li[data-index='0']").click() or True)  # done clip
        wait.until(lambda d: text("#status") == "done")
    finally:
        driver.quit()


def post_decision(url: str, **decision) -> dict:
    request = urllib.request.Request(url + "api/decision", data=json.dumps(decision).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@pytest.mark.slow
def test_the_loop_review_then_split_then_a_run_warm_started_from_the_reviewed_model(trained_run, synthetic_root,
                                                                                        tmp_path):
    """predict new clips -> decisions through the page's server -> split adds them, every earlier clip in place ->
    preprocess -> train training.init_from, whose first epoch starts from the earlier weights (a learning rate of
    1e-30 keeps them)."""
    import torch
    from helpers import run_here, train_here

    from mmbehave.checkpoints.files import read_checkpoint
    from mmbehave.predicting.run import run_prediction
    from mmbehave.reviewing.corrections import CorrectionOptions, add_reviewed, write_corrections

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)                     # the shared dataset stays as it is
    archive = tmp_path / "archive"
    for number, source in enumerate(sorted((root / "raw" / "videos").glob("test_*.mp4"))[:6]):
        folder = archive / f"new_site_{number % 2}" / "camera_1"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / f"new_{number}.mp4")
    run_prediction(compose_config([f"checkpoint={trained_run.checkpoint}", f"input={archive}",
                                   f"output={tmp_path / 'season.csv'}", "review=true", "num_workers=0"],
                                  config_name="predict"))
    queue = pd.read_csv(tmp_path / "season_review.csv", dtype=str, keep_default_na=False)
    classes = read_checkpoint(trained_run.checkpoint)["classes"]
    with review_server_on(tmp_path / "season_review.csv", trained_run.checkpoint, tmp_path) as url:
        for index in range(5):
            post_decision(url, index=index, head="species", decision="relabel", answer=classes["species"][index % 2])
            post_decision(url, index=index, head="behavior", decision="accept")
        post_decision(url, index=5, head="species", decision="unsure")
    reviewed = tmp_path / "season_reviewed.csv"
    assert len(pd.read_csv(reviewed)) == 12                    # 5 clips x 2 heads, the unsure one a row per head

    metadata = root / "raw" / "metadata"
    cfg = compose_config([f"reviewed={reviewed}", f"labels_dir={metadata}", f"output_dir={tmp_path / 'round1'}",
                          "group_from_folder=2"], config_name="split")
    result = add_reviewed(CorrectionOptions.from_config(cfg))
    write_corrections(result)
    added = result.outcome[result.outcome["outcome"] == "added"]
    assert len(added) == 5 and list(result.outcome[result.outcome["outcome"] == "left out"]["reason"]) == ["unsure"]
    for split in ("train", "val", "test"):
        before = pd.read_csv(metadata / f"{split}.csv", dtype=str, keep_default_na=False)
        after = pd.read_csv(tmp_path / "round1" / f"{split}.csv", dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(after.iloc[: len(before)][before.columns], before)  # nothing earlier moved
    sites = added.assign(site=[Path(p).parent.parent.name for p in added["path"]]).groupby("site")["split"].nunique()
    assert (sites == 1).all()                                  # a new site goes whole to one split
    for position, clip in enumerate(queue.iloc[:5].itertuples()):
        row = result.tables[added.set_index("path").loc[clip.path, "split"]].set_index("clip_id").loc[clip.clip_id]
        assert row["species"] == classes["species"][position % 2]            # the person's label, not the model's
        assert row["reviewed_by"] == "tester" and Path(row["video_path"]).is_file()

    labels = f"data.labels_dir={tmp_path / 'round1'}"
    run_here("preprocess", f"data.root={root}", labels, tmp_path=tmp_path, run="prep")
    train_here(tmp_path, "debug=fast", f"data.root={root}", labels, f"training.init_from={trained_run.checkpoint}",
               "optimizer.lr=1e-30", "mlflow.registered_model_name=loop", run="round1")
    earlier, warm = read_checkpoint(trained_run.checkpoint), read_checkpoint(tmp_path / "round1" / "checkpoints" / "best.pth")
    statistics = ("running_mean", "running_var", "num_batches_tracked")    # batch norm's, which training updates
    weights = [name for name in earlier["model"] if not name.endswith(statistics)]
    # a step of 1e-30 leaves every weight where it started (to float32's resolution): the earlier model's
    assert weights and all(torch.allclose(warm["model"][name], earlier["model"][name], rtol=1e-6, atol=1e-12)
                           for name in weights)
    assert warm["review_round"] == 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(warm["mlflow_run_id"])
    assert (run.data.tags["review_round"], run.data.tags["reviewed_clips"]) == ("1", str(
        sum(split != "test" for split in added["split"])))
    versions = client.search_model_versions("name='loop'")
    assert run.data.tags["init_from_sha256"] and [str(v.version) for v in versions] == ["1"]


def test_a_warm_start_moves_head_rows_by_class_name_and_a_new_class_keeps_its_fresh_row():
    import torch

    from mmbehave.data.metadata import ClassLists
    from mmbehave.training.warm_start import merged_state

    earlier = {"fusion.w": torch.ones(2, 2), "heads.species.1.weight": torch.tensor([[1.0, 1.0], [2.0, 2.0]]),
               "heads.species.1.bias": torch.tensor([1.0, 2.0])}
    own = {"fusion.w": torch.zeros(2, 2), "heads.species.1.weight": torch.full((3, 2), 9.0),
           "heads.species.1.bias": torch.full((3,), 9.0)}
    now = ClassLists({"species": ["badger", "deer", "fox"]})           # "deer" is new, between the two known
    merged = merged_state(own, earlier, {"species": ["badger", "fox"]}, now, "training.init_from=x")
    assert torch.equal(merged["fusion.w"], torch.ones(2, 2))
    assert merged["heads.species.1.weight"].tolist() == [[1.0, 1.0], [9.0, 9.0], [2.0, 2.0]]
    assert merged["heads.species.1.bias"].tolist() == [1.0, 9.0, 2.0]
    with pytest.raises(Exception, match=r"fusion.w is \(3,\) there, \(2, 2\) here"):
        merged_state(own, {**earlier, "fusion.w": torch.ones(3)}, {"species": ["badger", "fox"]}, now, "x")


def test_the_decisions_export_as_a_camtrap_dp_package_of_human_observations(predicted, trained_run, tmp_path):
    from mmbehave.data.camtrap_dp.package import read_package
    from mmbehave.reviewing.camtrap_export import export_decisions

    for name in (predicted.name, "season.csv"):
        shutil.copy(predicted.with_name(name), tmp_path / name)
    queue = queue_of(tmp_path / predicted.name, trained_run)
    store = DecisionStore(queue)
    other = next(name for name in queue.classes["species"] if name != queue.clips[0].answers["species"][0][0])
    store.record(queue.clips[0], "species", "relabel", other, "ana")
    store.record(queue.clips[0], "behavior", "accept", "", "ana")
    store.record(queue.clips[1], "species", "empty", "", "ben")
    store.record(queue.clips[2], "species", "unsure", "", "ben")
    store.record(queue.clips[3], "species", "accept", "", "ben")        # behaviour not decided: not reviewed yet
    folder, clips = export_decisions(store.all(), queue, tmp_path / "package")
    assert clips == 3
    package = read_package(folder / "datapackage.json")                 # mmbehave's own Camtrap DP reader takes it
    observations = package.observations.set_index("classifiedBy", drop=False)
    assert set(package.observations["classificationMethod"]) == {"human"}
    assert list(package.observations["observationType"]) == ["animal", "blank", "unknown"]
    assert observations.loc["ana", "scientificName"] == other
    assert observations.loc["ana", "behavior"] == queue.clips[0].answers["behavior"][0][0]
    assert len(package.media) == 3 and "Human observations" in (folder / "datapackage.json").read_text()


def test_a_package_reviewed_elsewhere_comes_back_as_the_same_decisions_and_unknown_classes_are_refused(
        predicted, trained_run, tmp_path):
    from mmbehave.reviewing.camtrap_export import export_decisions
    from mmbehave.reviewing.camtrap_import import import_decisions

    def fresh_queue(folder: Path):
        folder.mkdir()
        for name in (predicted.name, "season.csv"):
            shutil.copy(predicted.with_name(name), folder / name)
        return queue_of(folder / predicted.name, trained_run)

    first = fresh_queue(tmp_path / "here")
    store = DecisionStore(first)
    for head in ("species", "behavior"):  # another class than the model's: an accept would come back as an accept
        top = first.clips[0].answers[head][0][0]
        store.record(first.clips[0], head, "relabel", next(c for c in first.classes[head] if c != top), "ana")
    store.record(first.clips[1], "species", "empty", "", "ben")
    store.record(first.clips[2], "species", "unsure", "", "ben")
    folder, _ = export_decisions(store.all(), first, tmp_path / "package")   # as Agouti would hand it back
    elsewhere = DecisionStore(fresh_queue(tmp_path / "there"))
    assert import_decisions(str(folder), elsewhere) == 3

    def said(table):
        return sorted(zip(table["clip_id"], table["head"], table["decision"], table["answer"], table["reviewer"]))
    assert said(elsewhere.all()) == said(store.all())
    observations = pd.read_csv(folder / "observations.csv", dtype=str, keep_default_na=False)
    observations.loc[0, "scientificName"] = "unicorn"
    observations.to_csv(folder / "observations.csv", index=False)
    with pytest.raises(Exception, match=r"observations.csv: row\(s\) 2 name classes the model does not know"):
        import_decisions(str(folder), DecisionStore(fresh_queue(tmp_path / "again")))
