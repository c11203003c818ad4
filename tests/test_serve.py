"""`seq2seq serve`: the real server (uvicorn, a process of its own on a free 127.0.0.1 port) with
three tiny runs. Its answers are `translate`'s, OpenNMT-py's routes answer in their shapes, every
bad request gets its 4xx, a one-line JSON error and one line in the log, it answers while it
decodes, and it stops cleanly after the requests in flight. The page is driven in headless
Chromium: typed into, translated with Ctrl+Enter, each run's output and heatmap found.

SEQ2SEQ_SERVE_RUNS="RUN ..." serves those runs to the page test instead, and
SEQ2SEQ_SCREENSHOT=docs/serve.png keeps its screenshot there (the README's).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.conftest import NO_BROWSER, browser, cli, tiny, toy_pairs, write_jsonl

RUNS = ("bahdanau", "transformer", "lstm")
CAT = "Die Katze, die auf der Matte neben dem Hund saß, sprang."
LIMITS = ["--max-chars", 300, "--max-lines", 6]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three tiny runs trained on toy data; bahdanau's is evaluated."""
    root = tmp_path_factory.mktemp("serve")
    data = write_jsonl(root / "toy")
    for model in RUNS:
        cli("train", "--config", tiny(model), "--model", model, "--dataset", data, "--max-steps", 30, "--epochs", 50,
            "--run-dir", root / model, "--set", "train.eval_every=10")
    cli("eval", root / "bahdanau", "--bootstrap", 0)
    return {model: root / model for model in RUNS}


def translated(run: Path, lines: list[str], beam: int | None = None) -> list[str]:
    """What `seq2seq translate RUN [--beam N]` prints for the lines, line by line."""
    beam_args = [] if beam is None else ["--beam", beam]
    stdin = "".join(f"{line}\n" for line in lines)
    return cli("translate", run, *beam_args, stdin=stdin, in_process=True).out.split("\n")[:-1]


class Server:
    """`seq2seq serve ARGS --port 0` in a process of its own: its URL, requests to it, what it logged."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "seq2seq", "serve", *map(str, args), "--port", "0"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops\)$", self.next_line(timeout=180))
        assert found, self.log
        self.url = found.group(1)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("(the log ends)")

    def next_line(self, timeout: float = 30) -> str:
        line = self.lines.get(timeout=timeout)
        self.log.append(line)
        return line

    def request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        """The status and the JSON of the answer; a body that is not bytes is sent as JSON."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def post(self, path: str, body: object) -> tuple[int, object]:
        return self.request("POST", path, body)

    def get(self, path: str) -> tuple[int, object]:
        return self.request("GET", path)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send the signal unless it has stopped; its exit code, once its log is read to the end."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.reader.join(30)
        while not self.lines.empty():
            self.next_line()
        return code


@pytest.fixture(scope="module")
def server(runs):
    served = Server(*runs.values(), *LIMITS, "--batch-wait-ms", 20)
    yield served
    served.stop()


def test_translate_answers_each_run_as_translate_does(server, runs):
    lines = ["eins zwei drei", "", "vier fünf sechs sieben", "zehn neun acht"]
    for beam in (None, 3):
        status, body = server.post("/translate", {"text": "\n".join(lines), "attention": True,
                                                  **({} if beam is None else {"beam": beam})})
        assert status == 200 and [answer["run"] for answer in body["runs"]] == list(RUNS)
        for answer in body["runs"]:
            assert answer["translation"].split("\n") == translated(runs[answer["run"]], lines, beam)
            assert answer["beam"] == (beam or 1) and answer["seconds"] > 0
            assert [s["source"] for s in answer["sentences"]] == lines and answer["sentences"][1]["tokens"] == []
            for sentence in answer["sentences"][::2]:
                tokens, logprobs = sentence["tokens"], sentence["logprobs"]
                assert tokens[-1] == "</s>" and len(logprobs) == len(tokens) and max(logprobs) <= 0
                assert sentence["score"] == pytest.approx(sum(logprobs) / len(logprobs), abs=1e-3)
                if answer["run"] == "lstm":  # no attention: the decoder sees the final state alone
                    assert sentence["attention"] is None
                else:
                    weights = torch.tensor(sentence["attention"])  # (T_out + 1, S + 1)
                    assert weights.shape == (len(tokens), len(sentence["source_tokens"]))
                    torch.testing.assert_close(weights.sum(1), torch.ones(len(tokens)), atol=1e-2, rtol=0)


def test_sentences_sent_at_once_by_many_clients_are_answered_as_translate_does(server, runs):
    sources = [de for de, _ in toy_pairs(24, seed=7)]
    expected = {name: translated(run, sources) for name, run in runs.items()}
    jobs = [(source, name) for source in sources for name in RUNS]

    def ask(job: tuple[str, str]) -> str:
        status, body = server.post("/translate", {"text": job[0], "runs": [job[1]]})
        assert status == 200
        return body["runs"][0]["translation"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, jobs))
    assert answers == [expected[name][sources.index(source)] for source, name in jobs]


def test_opennmt_py_routes_answer_in_their_shapes(server, runs):
    inputs = [{"src": "eins zwei", "id": 0}, {"src": "drei vier fünf", "id": 2}, {"src": "sechs"}]
    status, body = server.post("/translator/translate", inputs)
    assert status == 200 and len(body) == 1 and len(body[0]) == 3  # one n-best list of 1, the inputs' order
    want = [translated(runs["bahdanau"], ["eins zwei"])[0], translated(runs["lstm"], ["drei vier fünf"])[0],
            translated(runs["bahdanau"], ["sechs"])[0]]
    for x, answer, tgt in zip(inputs, body[0], want):
        assert set(answer) == {"src", "tgt", "n_best", "pred_score"}
        assert (answer["src"], answer["tgt"], answer["n_best"]) == (x["src"], tgt, 1)
        assert isinstance(answer["pred_score"], float) and answer["pred_score"] <= 0
    status, models = server.get("/translator/models")
    assert status == 200 and [m["model_id"] for m in models] == [0, 1, 2] and all(m["loaded"] for m in models)


def test_runs_and_health(server, runs):
    status, body = server.get("/runs")
    assert status == 200 and [run["name"] for run in body["runs"]] == list(RUNS)
    for run in body["runs"]:
        assert run["model"] == run["name"] and run["checkpoint"] == "best" and run["id"] == RUNS.index(run["name"])
        best = torch.load(runs[run["name"]] / "checkpoints" / "best.pt", weights_only=False)
        assert run["step"] == best["progress"]["step"]
    evaluated = json.loads((runs["bahdanau"] / "eval" / "test.json").read_text())
    assert [run["test_bleu"] for run in body["runs"]] == [evaluated["bleu"], None, None]
    assert server.get("/health") == (200, {"status": "ok", "runs": 3, "pending": 0})


TEXT = {"text": "eins"}
BAD = {  # id: (method, path, body, status, what the error says)
    "empty_text": ("POST", "/translate", {"text": ""}, 422, "the text is empty"),
    "blank_lines": ("POST", "/translate", {"text": " \n\t\n"}, 422, "the text is empty"),
    "too_many_characters": ("POST", "/translate", {"text": "eins " * 61}, 413, "over the limit of 300"),
    "too_many_lines": ("POST", "/translate", {"text": "eins\n" * 7}, 413, "7 lines, over the limit of 6"),
    "malformed_json": ("POST", "/translate", b'{"text": "eins"', 400, "the body is not JSON"),
    "not_utf8": ("POST", "/translate", b'{"text": "\xff"}', 400, "the body is not JSON"),
    "body_too_large": ("POST", "/translate", b" " * 70000, 413, "the request body is over"),
    "body_not_an_object": ("POST", "/translate", ["eins"], 422, "the body must be a JSON object"),
    "text_missing": ("POST", "/translate", {"beam": 2}, 422, "text is missing"),
    "text_not_text": ("POST", "/translate", {"text": 5}, 422, "text must be text, got 5"),
    "unknown_field": ("POST", "/translate", TEXT | {"beams": 4}, 422, 'unknown field "beams"'),
    "unknown_run": ("POST", "/translate", TEXT | {"runs": ["gpt"]}, 404, 'no run named "gpt"'),
    "runs_empty": ("POST", "/translate", TEXT | {"runs": []}, 422, "runs must be a non-empty list"),
    "runs_not_a_list": ("POST", "/translate", TEXT | {"runs": "lstm"}, 422, "runs must be a list"),
    "beam_zero": ("POST", "/translate", TEXT | {"beam": 0}, 422, "beam must be from 1 to 16, got 0"),
    "beam_too_wide": ("POST", "/translate", TEXT | {"beam": 17}, 422, "beam must be from 1 to 16, got 17"),
    "beam_as_text": ("POST", "/translate", TEXT | {"beam": "5"}, 422, "beam must be an integer"),
    "attention_as_text": ("POST", "/translate", TEXT | {"attention": "yes"}, 422, "attention must be"),
    "opennmt_not_a_list": ("POST", "/translator/translate", {"src": "eins"}, 422, "a non-empty JSON list"),
    "opennmt_src_missing": ("POST", "/translator/translate", [{"id": 0}], 422, "src must be one line"),
    "opennmt_src_two_lines": ("POST", "/translator/translate", [{"src": "a\nb"}], 422, "src must be one line"),
    "opennmt_unknown_id": ("POST", "/translator/translate", [{"src": "eins", "id": 100}], 404, "no model with id 100"),
    "unknown_route": ("GET", "/translate/now", None, 404, "Not Found"),
    "wrong_method": ("GET", "/translate", None, 405, "Method Not Allowed"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_request_gets_its_status_a_one_line_json_error_and_one_log_line(server, case):
    method, path, body, want_status, says = BAD[case]
    status, answer = server.request(method, path, body)
    assert status == want_status and set(answer) == {"error"}, answer
    error = answer["error"]
    assert says in error and "\n" not in error and "Traceback" not in error
    assert server.next_line() == f"{status} {method} {path}: {error}"  # one line in the log ...
    with pytest.raises(queue.Empty):
        server.next_line(timeout=0.2)  # ... and nothing more
    assert server.get("/health")[0] == 200


def test_a_source_longer_than_the_model_takes_is_cut_and_said_so(runs):
    from seq2seq.batcher import Served
    from seq2seq.evaluate import load_run

    loaded = load_run(runs["transformer"], "best", "cpu")
    short, long = Served("transformer", 0, loaded).decode(["eins zwei", " ".join(["eins zwei drei"] * 400)], 1, False)
    assert not short["cut"] and long["cut"]
    assert len(long["source_tokens"]) == loaded.engine.max_positions  # the ids its positions hold, then EOS


def test_health_answers_while_a_batch_decodes(runs):
    """Decoding runs beside the event loop: here a decode that cannot finish until /health has
    answered (were it on the loop, /health would wait for it, and the test would time out)."""
    import uvicorn

    from seq2seq.batcher import Served, Settings
    from seq2seq.evaluate import load_run
    from seq2seq.serve import build_app, listen

    run = Served("bahdanau", 0, load_run(runs["bahdanau"], "best", "cpu"))
    decoding, answered = threading.Event(), threading.Event()
    decode = run.decode

    def held(*args):
        decoding.set()
        assert answered.wait(60)
        return decode(*args)

    run.decode = held
    sock = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server = uvicorn.Server(uvicorn.Config(build_app([run], Settings()), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        post = urllib.request.Request(url + "translate", data=json.dumps({"text": "eins zwei"}).encode())
        with ThreadPoolExecutor(1) as pool:
            translation = pool.submit(lambda: json.loads(urllib.request.urlopen(post, timeout=60).read()))
            assert decoding.wait(60)
            with urllib.request.urlopen(url + "health", timeout=30) as response:
                assert json.loads(response.read())["pending"] == 1
            answered.set()
            assert translation.result()["runs"][0]["translation"] == translated(runs["bahdanau"], ["eins zwei"])[0]
    finally:
        answered.set()
        server.should_exit = True
        thread.join(60)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_after_the_requests_in_flight(runs, sig):
    served = Server(runs["lstm"], "--batch-wait-ms", 1000)  # a request waits a second for others to join it
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(served.post, "/translate", {"text": "vier fünf"})
            while served.get("/health")[1]["pending"] == 0:
                time.sleep(0.01)
            served.proc.send_signal(sig)
            status, body = answer.result(timeout=60)
        code = served.proc.wait(timeout=60)
    finally:
        served.stop()  # sends nothing to a server that has stopped
    assert status == 200 and body["runs"][0]["translation"] == translated(runs["lstm"], ["vier fünf"])[0]
    assert code == 0 and served.log[-2:] == [f"stopped by {signal.Signals(sig).name}", "(the log ends)"], served.log
    assert not any("Traceback" in line for line in served.log)


def test_a_port_in_use_is_one_line_and_an_open_host_warns(runs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = cli("serve", runs["lstm"], "--port", port, expect=2).err
    assert err == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    err = cli("serve", runs["lstm"], "--host", "0.0.0.0", "--port", 70000, expect=2).err  # stops before it binds
    assert err.splitlines() == ["warning: --host 0.0.0.0: anyone who can reach this machine on the network can use "
                                "the server (it has no authentication)",
                                "error: --port must be from 0 to 65535, got 70000"]


# -- the page, in headless Chromium ------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    if browser() is None:
        pytest.skip(NO_BROWSER)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:  # the system's Chromium; no name resolves, so nothing is fetched
        launched = playwright.chromium.launch(executable_path=browser(), args=[
            "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield launched
        launched.close()


def open_page(chromium, url: str, width: int = 1280):
    """A page at url, and the console errors and uncaught exceptions it will log."""
    page = chromium.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#served:has-text('step')")
    return page, errors


def assert_heatmap_draws(canvas, weights: torch.Tensor) -> None:
    """The cells of the largest and the smallest weight are shaded by them: white at 0, (11, 87, 208) at 1."""
    left, top, cell, ratio = canvas.evaluate("c => [+c.dataset.left, +c.dataset.top, +c.dataset.cell, "
                                             "window.devicePixelRatio]")
    for flat in (int(weights.argmax()), int(weights.argmin())):
        i, j = divmod(flat, weights.size(1))
        x, y = round((left + cell * (j + 0.5)) * ratio), round((top + cell * (i + 0.5)) * ratio)
        red = canvas.evaluate("(c, [x, y]) => c.getContext('2d').getImageData(x, y, 1, 1).data[0]", [x, y])
        assert abs(red - (255 - float(weights[i, j]) * (255 - 11))) <= 3, (i, j, red)


@pytest.fixture(scope="module")
def page_runs(request) -> list[Path]:
    """The runs of $SEQ2SEQ_SERVE_RUNS, else the tiny ones."""
    return [Path(d) for d in os.environ.get("SEQ2SEQ_SERVE_RUNS", "").split()] or \
        list(request.getfixturevalue("runs").values())


@pytest.fixture(scope="module")
def page_server(page_runs):
    served = Server(*page_runs)
    yield served
    served.stop()


def test_the_page_translates_the_cat_sentence_with_each_runs_output_and_heatmap(chromium, page_runs, page_server,
                                                                                  tmp_path):
    run_dirs, served = page_runs, page_server
    page, errors = open_page(chromium, served.url)
    page.locator("#text").press_sequentially(CAT)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f"article.run >> nth={len(run_dirs) - 1}")
    names = page.locator("article.run h2").all_inner_texts()
    assert len(names) == len(run_dirs)
    for name, run_dir in zip(names, run_dirs):
        card = page.locator(f"article.run[data-run='{name}']")
        assert card.locator(".translation").inner_text() == translated(run_dir, [CAT])[0]
        assert card.locator(".token").count() >= 1
        _, answer = served.post("/translate", {"text": CAT, "runs": [name], "attention": True})
        weights = answer["runs"][0]["sentences"][0]["attention"]
        if weights is None:
            assert card.locator("canvas.heatmap").count() == 0
            assert "decoder sees only the source's final state" in card.locator(".note").inner_text()
        else:
            assert card.locator("canvas.heatmap").count() == 1
            assert_heatmap_draws(card.locator("canvas.heatmap"), torch.tensor(weights))
    page.screenshot(path=os.environ.get("SEQ2SEQ_SCREENSHOT") or tmp_path / "serve.png", full_page=True)

    page.check("input[value=beam]")  # beam 3, with the button this time
    page.fill("#beam", "3")
    page.click("#go")
    page.wait_for_selector("article.run .meta:has-text('beam 3')")
    first = page.locator("article.run .translation").first.inner_text()
    assert first == translated(run_dirs[0], [CAT], beam=3)[0]
    assert errors == []
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the page itself does not scroll sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_page_shows_markup_in_names_and_translations_as_text(chromium, page_server):
    """Run names and translations that hold HTML reach the page as text: nothing of them runs or renders."""
    evil = '<img src=x onerror="window.owned=1">'
    script = "<script>window.owned=1</script>"
    runs = {"runs": [{"name": evil, "id": 0, "model": "lstm", "settings": {}, "attention_layers": None,
                      "checkpoint": "best", "step": 1, "beam": 1, "test_bleu": None}], "max_beam": 16}
    sentence = {"source": "x", "translation": script, "source_tokens": ["<b>x</b>", "</s>"], "tokens": [script, "</s>"],
                "logprobs": [-0.1, -0.2], "score": -0.15, "cut": False, "attention": [[0.5, 0.5], [0.2, 0.8]]}
    answer = {"runs": [{"run": evil, "model": "<i>m</i>", "beam": 1, "seconds": 0.1, "translation": script,
                        "sentences": [sentence]}]}
    page = chromium.new_page()
    page.route("**/runs", lambda route: route.fulfill(json=runs))
    page.route("**/translate", lambda route: route.fulfill(json=answer))
    page.goto(page_server.url)
    page.wait_for_selector("#served:has-text('step')")
    page.fill("#text", "x")
    page.click("#go")
    page.wait_for_selector("article.run")
    assert page.locator("article.run h2").inner_text() == evil
    assert page.locator("article.run .translation").inner_text() == script
    assert evil in page.locator("#served").inner_text()
    assert page.locator("main img, main script, main b, main i").count() == 0
    assert page.evaluate("window.owned") is None
