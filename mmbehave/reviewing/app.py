"""The review page's server: Starlette (the ASGI toolkit FastAPI is built on, already installed with MLflow; a
page and six JSON/file routes need no more) under uvicorn. No build step, no CDN: the page is three static
files in ``reviewing/page/``.

    GET  /                          the page
    GET  /api/state                 heads, classes, the clips in queue order, every decision so far
    POST /api/decision              {index, head, decision, answer}: written at once to <stem>_reviewed.csv
    GET  /media/<index>/<kind>      video | audio | spectrogram | frames of the queue's clip <index>

Only the queue's own clips are served (by their place in the queue, never by a path from the request).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from mmbehave.core.errors import UserError
from mmbehave.reviewing.decisions import DecisionStore
from mmbehave.reviewing.media import KINDS, MEDIA_TYPES, MediaCache
from mmbehave.reviewing.queue import ReviewQueue

PAGE_FILES = {"/": ("review.html", "text/html"), "/review.js": ("review.js", "text/javascript"),
              "/review.css": ("review.css", "text/css")}


def page_file(name: str) -> bytes:
    return resources.files("mmbehave.reviewing.page").joinpath(name).read_bytes()


def decisions_json(table) -> dict[str, dict[str, dict[str, str]]]:
    """{path: {head: {decision, answer, reviewer, time}}}."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for row in table.to_dict("records"):
        out.setdefault(row["path"], {})[row["head"]] = {key: row[key] for key in ("decision", "answer", "reviewer", "time")}
    return out


def make_app(queue: ReviewQueue, store: DecisionStore, media: MediaCache, reviewer: str) -> Starlette:
    def static(path: str):
        name, media_type = PAGE_FILES[path]

        async def serve(request: Request) -> Response:
            return Response(page_file(name), media_type=media_type, headers={"Cache-Control": "no-cache"})
        return serve

    async def state(request: Request) -> JSONResponse:
        table = await run_in_threadpool(store.all)
        return JSONResponse({"heads": queue.heads, "classes": queue.classes, "reviewer": reviewer,
                             "table": str(queue.table), "reviewed": str(store.path),
                             "clips": [clip.to_json() for clip in queue.clips], "decisions": decisions_json(table)})

    async def decide(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            clip = queue.clips[int(body["index"])]
            rows = await run_in_threadpool(store.record, clip, str(body["head"]), str(body["decision"]),
                                           str(body.get("answer") or ""), str(body.get("reviewer") or reviewer))
        except UserError as error:  # before ValueError: a refused decision says why
            return JSONResponse({"error": str(error)}, status_code=400)
        except (KeyError, ValueError, IndexError, TypeError):
            return JSONResponse({"error": "send {index, head, decision, answer}"}, status_code=400)
        return JSONResponse({"path": clip.path, "decisions": decisions_json(rows).get(clip.path, {})})

    async def clip_media(request: Request) -> Response:
        index, kind = int(request.path_params["index"]), request.path_params["kind"]
        if kind not in KINDS or not 0 <= index < len(queue.clips):
            return JSONResponse({"error": "no such clip or media kind"}, status_code=404)
        path = Path(queue.clips[index].path)
        try:
            served = await run_in_threadpool(media.file, path, kind)
        except UserError as error:  # no sound, no video, an unreadable file: the page says so in place
            return JSONResponse({"error": str(error)}, status_code=404)
        return FileResponse(served, media_type=MEDIA_TYPES.get(served.suffix.lower(), "application/octet-stream"))

    routes = [Route(path, static(path)) for path in PAGE_FILES]
    routes += [Route("/api/state", state), Route("/api/decision", decide, methods=["POST"]),
               Route("/media/{index:int}/{kind}", clip_media)]
    return Starlette(routes=routes)
