"""`seq2seq serve`: runs loaded once, a page and a JSON API over HTTP (Starlette on uvicorn).

    GET  /                       the page (seq2seq/static/): type German, see each run's translation
    POST /translate              {"text", "runs", "beam", "attention"} -> per run, per line: the
                                 translation, its tokens and their log p, and where it looked
    POST /translator/translate   OpenNMT-py's REST route: [{"src", "id"}] -> [[{"src", "tgt",
                                 "n_best", "pred_score"}]]; GET /translator/models lists the runs
    GET  /runs, /health          the runs (model, checkpoint step, test BLEU); liveness and the sentences pending

A sentence's answer is the hypothesis `seq2seq translate` gives it: search.best with the run's
eval settings and the beam asked for. Requests that arrive together are decoded together: each
run has a queue (batcher.py's Batcher) whose worker waits a few milliseconds for more requests
after the first, takes up to max_batch sentences and decodes them in one call, on a thread
beside the event loop (one decode at a time), so the server answers while it decodes. Bad
requests get a 4xx and {"error": one line}, and one line in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seq2seq.batcher import Batcher, Served, Settings, blank
from seq2seq.errors import UserError, first_line
from seq2seq.evaluate import load_run
from seq2seq.files import check_fields

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError:
    raise UserError('seq2seq serve needs the serve extra: pip install -e ".[serve]"') from None

STATIC = Path(__file__).parent / "static"
MAX_BEAM = 16
JSON_SLACK = 65536  # bytes a request body may hold beyond its text (at 12 per character, \\u-escaped)
FIELDS = {"text": str, "runs": list, "beam": int, "attention": bool}  # of POST /translate
HEADERS = {"Content-Security-Policy": "default-src 'self'"}  # the page runs no script but its own


class RequestError(Exception):
    """A bad request: its HTTP status and one line saying what is wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Service:
    """The routes, over the runs served."""

    def __init__(self, runs: list[Served], settings: Settings):
        self.runs, self.settings = runs, settings
        self.by_name = {run.name: run for run in runs}

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        for run in self.runs:
            run.batcher = Batcher(run.decode, self.settings, executor)
        workers = [asyncio.create_task(run.batcher.work()) for run in self.runs]
        try:
            yield
        finally:  # uvicorn has answered every request in flight
            for worker in workers:
                worker.cancel()
            executor.shutdown(wait=True)

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=HEADERS)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "runs": len(self.runs),
                             "pending": sum(run.batcher.pending for run in self.runs)})

    async def list_runs(self, request: Request) -> Response:
        return JSONResponse({"runs": [run.describe() for run in self.runs], "max_beam": MAX_BEAM,
                             "max_chars": self.settings.max_chars, "max_lines": self.settings.max_lines})

    async def translate(self, request: Request) -> Response:
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise RequestError(422, "the body must be a JSON object: {\"text\": ..., \"runs\": [...], \"beam\": N, "
                                    "\"attention\": true}")
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise RequestError(422, f"unknown field {shown(unknown[0])}: the fields are {', '.join(FIELDS)}")
        check_fields(body, FIELDS, "request")
        if "text" not in body:
            raise RequestError(422, "request: text is missing")
        lines = self.lines(split_lines(body["text"]))
        runs = self.named(body.get("runs", list(self.by_name)))
        beam = body.get("beam")
        if beam is not None and not 1 <= beam <= MAX_BEAM:
            raise RequestError(422, f"request: beam must be from 1 to {MAX_BEAM}, got {beam}")
        answers = await asyncio.gather(*(self.answer(run, lines, beam, body.get("attention", False)) for run in runs))
        return JSONResponse({"runs": answers})

    async def answer(self, run: Served, lines: list[str], beam: int | None, attention: bool) -> dict:
        """One run's answer to the lines: its translation, the time it took, and each line's details."""
        beam = beam or run.loaded.cfg.eval.beam
        started = time.perf_counter()
        todo = [i for i, line in enumerate(lines) if line.strip()]
        found = await run.batcher.translate([lines[i] for i in todo], beam, attention) if todo else []
        sentences = [blank(line) for line in lines]
        for i, sentence in zip(todo, found):
            sentences[i] = sentence
        return {"run": run.name, "model": run.loaded.cfg.model.name, "beam": beam,
                "seconds": round(time.perf_counter() - started, 4),
                "translation": "\n".join(s["translation"] for s in sentences), "sentences": sentences}

    async def opennmt_translate(self, request: Request) -> Response:
        """OpenNMT-py's route: each input's best translation by the run its id names (default 0),
        with the run's own beam, in the inputs' order, as one n-best list of 1."""
        inputs = await self.read_json(request)
        if not isinstance(inputs, list) or not inputs or not all(isinstance(x, dict) for x in inputs):
            raise RequestError(422, 'the body must be a non-empty JSON list of objects: [{"src": ..., "id": N}]')
        for i, x in enumerate(inputs):
            check_fields(x, {"src": str, "id": int}, f"input {i}")
            if "src" not in x or "\n" in x["src"]:
                raise RequestError(422, f"input {i}: src must be one line of text")
        self.lines([x["src"] for x in inputs])
        ids = [x.get("id", 0) for x in inputs]
        for model_id in ids:
            if not 0 <= model_id < len(self.runs):
                raise RequestError(404, f"no model with id {model_id}: the ids are 0 to {len(self.runs) - 1}")
        by_run = {model_id: [x["src"] for x, i in zip(inputs, ids) if i == model_id] for model_id in dict.fromkeys(ids)}
        answers = await asyncio.gather(*(self.answer(self.runs[i], srcs, None, False) for i, srcs in by_run.items()))
        found = {model_id: iter(answer["sentences"]) for model_id, answer in zip(by_run, answers)}
        sentences = [next(found[model_id]) for model_id in ids]
        return JSONResponse([[{"src": x["src"], "tgt": s["translation"], "n_best": 1, "pred_score": s["score"]}
                              for x, s in zip(inputs, sentences)]])

    async def opennmt_models(self, request: Request) -> Response:
        return JSONResponse([{"model_id": run.id, "models": [str(run.loaded.run.checkpoint(run.loaded.which))],
                              "opt": {"beam_size": run.loaded.cfg.eval.beam, "name": run.name,
                                      "model": run.loaded.cfg.model.name}, "loaded": True, "timeout": -1}
                             for run in self.runs])

    async def read_json(self, request: Request) -> object:
        limit = 12 * self.settings.max_chars + JSON_SLACK
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(413, f"the request body is over {limit} bytes")
        try:
            return json.loads(body)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
            raise RequestError(400, f"the body is not JSON ({first_line(e)})") from None

    def lines(self, lines: list[str]) -> list[str]:
        """The lines of a request, within the limits, not all blank."""
        chars = sum(len(line) for line in lines)
        if chars > self.settings.max_chars:
            raise RequestError(413, f"the text has {chars} characters, over the limit of {self.settings.max_chars}")
        if len(lines) > self.settings.max_lines:
            raise RequestError(413, f"the text has {len(lines)} lines, over the limit of {self.settings.max_lines}")
        if not any(line.strip() for line in lines):
            raise RequestError(422, "the text is empty")
        return lines

    def named(self, names: list) -> list[Served]:
        if not names or not all(isinstance(name, str) for name in names):
            raise RequestError(422, "request: runs must be a non-empty list of run names")
        for name in names:
            if name not in self.by_name:
                raise RequestError(404, f"no run named {shown(name)}: the runs are {', '.join(self.by_name)}")
        return [self.by_name[name] for name in dict.fromkeys(names)]


def split_lines(text: str) -> list[str]:
    """The lines of a text as `translate` reads them from a file: split at \\n, a \\r before it
    dropped, and no empty line after a final \\n."""
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")]


def shown(value: object) -> str:
    said = json.dumps(value, ensure_ascii=False)
    return said if len(said) <= 40 else said[:37] + "..."


async def error_response(request: Request, e: Exception) -> Response:
    """A bad request's status and {"error": one line}, and that line in the log."""
    if isinstance(e, HTTPException):
        status, message = e.status_code, f"{e.detail}: {request.method} {request.url.path}"
    elif isinstance(e, UserError):  # check_fields' messages
        status, message = 422, str(e)
    else:
        status, message = e.status, str(e)
    print(f"{status} {request.method} {request.url.path}: {message}", file=sys.stderr, flush=True)
    return JSONResponse({"error": message}, status)


async def internal_error(request: Request, e: Exception) -> Response:
    """A bug: 500 and one line to the client; uvicorn logs the traceback."""
    return JSONResponse({"error": f"internal error ({type(e).__name__})"}, 500)


def build_app(runs: list[Served], settings: Settings) -> Starlette:
    service = Service(runs, settings)
    routes = [Route("/", service.page), Route("/health", service.health), Route("/runs", service.list_runs),
              Route("/translate", service.translate, methods=["POST"]),
              Route("/translator/translate", service.opennmt_translate, methods=["POST"]),
              Route("/translator/models", service.opennmt_models), Route("/translator/health", service.health),
              Mount("/static", StaticFiles(directory=STATIC))]
    return Starlette(routes=routes, lifespan=service.lifespan,
                     exception_handlers={HTTPException: error_response, RequestError: error_response,
                                         UserError: error_response, Exception: internal_error})


def run_names(run_dirs: list[Path]) -> list[str]:
    """Each run's name: its directory's, or its path where two runs share a directory name."""
    for i, run_dir in enumerate(run_dirs):
        if run_dir in run_dirs[:i]:
            raise UserError(f"run {run_dir} is given twice: serve each run once")
    names = [run_dir.name or str(run_dir) for run_dir in run_dirs]
    return names if len(set(names)) == len(names) else [str(run_dir) for run_dir in run_dirs]


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: any free one), or one clear error."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()  # from here connections wait for uvicorn to accept them
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


class Stopped(Exception):
    pass


def serve(run_dirs: list[Path], host: str, port: int, which: str, device: str, settings: Settings) -> None:
    """Load the runs, listen, and serve until Ctrl-C or SIGTERM, which stop it once every request
    in flight is answered."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {host}: anyone who can reach this machine on the network can use the server "
              "(it has no authentication)", file=sys.stderr)
    settings.check()
    names = run_names(run_dirs)
    sock = listen(host, port)
    runs = [Served(name, i, load_run(run_dir, which, device)) for i, (name, run_dir) in enumerate(zip(names, run_dirs))]
    server = uvicorn.Server(uvicorn.Config(build_app(runs, settings), log_level="warning", access_log=False))
    bound = sock.getsockname()
    url = f"http://{f'[{bound[0]}]' if ':' in bound[0] else bound[0]}:{bound[1]}/"
    print(f"serving {', '.join(run.name for run in runs)} at {url} (Ctrl-C stops)", file=sys.stderr, flush=True)

    def stop(signum, _frame) -> None:  # uvicorn raises the signal again once it has stopped
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    except Stopped as e:
        print(f"stopped by {e}", file=sys.stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
