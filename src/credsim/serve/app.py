"""The web app: a JSON API over credsim's Python API, server-sent events for progress, and
the page in static/.

Safety, in short (docs/dashboard.md says more): requests are validated with the scenario
schema, as the command line's --set is; presets are chosen by name, never by path; every
job, download and lookup is reached through a job id the server made and a fixed kind;
a job is visible only to the browser session that started it (a session cookie this
server signed) or to a holder of its share token; a body is capped before it is read; the
Host header must be one the server answers to, and writes must be JSON from
the page's own origin.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import secrets
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from credsim.errors import InputError
from credsim.serve.jobs import DOWNLOADS, ENDED, FINISHED, YEAR, Job, Jobs, LimitError, Limits

COOKIE = "credsim_session"
MAX_BODY_BYTES = 200_000
MAX_OVERRIDES = 200
SSE_INTERVAL_SECONDS = 0.2


@dataclass
class Config:
    data: Path
    limits: Limits = field(default_factory=Limits)
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")
    # Signs the session cookies this server issues; a new one each start.
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))


class Refused(Exception):
    """A request refused with one message (HTTP `status`)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def create_app(config: Config) -> FastAPI:
    jobs = Jobs(config.data, config.limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(jobs.shutdown)

    app = FastAPI(title="credsim", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.jobs = jobs
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))

    @app.middleware("http")
    async def session_and_origin(request: Request, call_next):
        if request.method not in ("GET", "HEAD"):
            problem = _write_problem(request)
            if problem:
                return JSONResponse({"error": problem}, status_code=403)
        token = request.cookies.get(COOKIE, "")
        # Cookies are shared by every port of a host, so another page on this machine can
        # plant one: only a token this server signed names a session.
        fresh = not _issued(token, config.secret)
        if fresh:
            token = _new_session(config.secret)
        request.state.session = token
        response = await call_next(request)
        if fresh:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                                max_age=30 * 86400)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    static = resources.files("credsim.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/")
    def index() -> Response:
        return FileResponse(str(static / "index.html"), headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
            "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-eval'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"})

    @app.get("/plotly.min.js")
    def plotly_js() -> Response:
        return FileResponse(_plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    # ------------------------------------------------------------ the model
    @app.get("/api/presets")
    def presets() -> list[dict[str, Any]]:
        return _presets()

    @app.get("/api/levers/{preset}")
    def levers(preset: str) -> dict[str, Any]:
        from credsim.serve.levers import levers as make

        sc = _load(_preset(preset), {})
        return {"preset": preset, "limits": asdict(config.limits),
                "levers": [_within_limits(lv, config.limits)
                           for lv in make(sc.model_dump(mode="json"))]}

    @app.post("/api/validate")
    async def validate(request: Request) -> dict[str, Any]:
        body = await _body(request)
        # Validation imports and checks the schema: off the event loop, as a job's start.
        return await asyncio.to_thread(_verdict, body, config.limits)

    # ------------------------------------------------------------ jobs
    @app.post("/api/jobs", status_code=201)
    async def start(request: Request) -> dict[str, Any]:
        spec = await asyncio.to_thread(_job_spec, await _body(request), config.limits)
        try:
            job = jobs.submit(request.state.session, spec)
        except LimitError as exc:
            raise Refused(str(exc), 429) from None
        return {**job.progress(), "share": job.share}

    @app.get("/api/jobs")
    def mine(request: Request) -> list[dict[str, Any]]:
        return [{**j.progress(), "share": j.share}
                for j in jobs.of_session(request.state.session)]

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str, request: Request, share: str | None = None) -> dict[str, Any]:
        job = _job(jobs, job_id, request, share)
        owner = _owner(job, request)
        return {**job.progress(), "spec": _public_spec(job), "results": job.results(),
                "owner": owner, "share": job.share if owner else share}

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str, request: Request) -> dict[str, Any]:
        job = _job(jobs, job_id, request, None)  # the owner only: a share link reads
        jobs.cancel(job)
        return job.progress()

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str, request: Request, share: str | None = None):
        job = _job(jobs, job_id, request, share)
        return StreamingResponse(_stream(job, request), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    @app.get("/api/jobs/{job_id}/person/{person}")
    def person(job_id: str, person: int, request: Request,
               share: str | None = None) -> dict[str, Any]:
        job = _finished_run(_job(jobs, job_id, request, share))
        return _person(job, person)

    @app.get("/api/jobs/{job_id}/family/{person}")
    def family(job_id: str, person: int, request: Request,
               share: str | None = None) -> dict[str, Any]:
        job = _finished_run(_job(jobs, job_id, request, share))
        return _family(job, person)

    @app.get("/api/jobs/{job_id}/download/{kind}")
    def download(job_id: str, kind: Literal["report", "scenario", "zip"], request: Request,
                 share: str | None = None) -> Response:
        job = _job(jobs, job_id, request, share)
        if job.state != FINISHED:
            raise Refused("this job has not finished; nothing to download yet", 409)
        path = jobs.zip_path(job) if kind == "zip" else job.folder / DOWNLOADS[kind]
        stem = f"credsim-{job.spec['preset']}-{job.kind}"
        names = {"report": f"{stem}.html", "scenario": f"{stem}.toml", "zip": f"{stem}.zip"}
        types = {"report": "text/html", "scenario": "application/toml",
                 "zip": "application/zip"}
        return FileResponse(str(path), media_type=types[kind], filename=names[kind])

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """A cheap endpoint: the load test measures the server's latency with it."""
        return {"ok": True, "jobs": jobs.counts()}

    return app


# ---------------------------------------------------------------- requests


def _write_problem(request: Request) -> str:
    """Why a write is refused: not JSON (a form another site could post), or sent from a
    page of another origin."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return "send JSON (Content-Type: application/json)"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin not in (f"http://{host}", f"https://{host}"):
            return "requests from another site are refused"
    return ""


def _signature(nonce: str, secret: bytes) -> str:
    mac = hmac.new(secret, nonce.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def _new_session(secret: bytes) -> str:
    """A session token: a random nonce and its HMAC under the server's secret."""
    nonce = secrets.token_urlsafe(32)
    return f"{nonce}.{_signature(nonce, secret)}"


def _issued(token: str, secret: bytes) -> bool:
    """Whether this server signed `token` (compared in constant time)."""
    nonce, dot, mac = token.partition(".")
    if not dot or not nonce.isascii() or len(token) > 200:
        return False
    return hmac.compare_digest(mac.encode("ascii", "replace"),
                               _signature(nonce, secret).encode("ascii"))


async def _body(request: Request) -> dict[str, Any]:
    raw = await _read_capped(request)
    try:
        # NaN and Infinity are refused here, as a scenario file refuses them.
        body = json.loads(raw or b"{}", parse_constant=_no_constant)
    except ValueError as exc:
        raise Refused(f"the request is not valid JSON ({exc})") from None
    except RecursionError:  # the JSON decoder recurses, as tomllib does
        from credsim.scenario.load import MAX_DEPTH

        raise Refused(f"the request is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(body, dict):
        raise Refused("the request must be a JSON object")
    return body


def _too_large() -> Refused:
    return Refused(f"request too large (at most {MAX_BODY_BYTES:,} bytes)", 413)


async def _read_capped(request: Request) -> bytes:
    """The body, refused before reading when Content-Length says it is too large, and
    while reading once a body sent without one (chunked) passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Refused("Content-Length: expected a number of bytes")
        if int(declared) > MAX_BODY_BYTES:
            raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a scenario accepts; numbers must be finite")


def _preset(name: Any) -> str:
    """A preset chosen by name: never a path, so no file is read on a browser's say."""
    from credsim.scenario.load import preset_names

    names = preset_names()
    if not isinstance(name, str) or name not in names:
        raise Refused(f"preset: expected one of {', '.join(names)}, got {_short(name)}")
    return name


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _overrides(value: Any, what: str) -> dict[str, Any]:
    """Overrides as {"dotted.key": value}: the keys of the command line's --set."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused(f"{what}: expected an object of {{\"dotted.key\": value}}")
    if len(value) > MAX_OVERRIDES:
        raise Refused(f"{what}: at most {MAX_OVERRIDES} overrides")
    for key in value:
        if key.split(".")[0] in ("extends", "name", "description"):
            raise Refused(f"{what}[{key!r}]: this key cannot be set from the browser")
    return value


def _load(preset: str, overrides: dict[str, Any]):
    import credsim

    try:
        return credsim.load(preset, set=overrides)
    except InputError as exc:
        raise Refused(str(exc)) from None


def _check_limits(scenario, limits: Limits) -> None:
    people, days = scenario.run.people, scenario.run.days
    if people > limits.max_people:
        raise Refused(f"run.people: {people:,} is over this server's limit of "
                      f"{limits.max_people:,} people (credsim serve --max-people)")
    if days > limits.max_days:
        raise Refused(f"run.days: {days:,} is over this server's limit of {limits.max_days:,} "
                      "days (credsim serve --max-days)")
    if people * days > limits.max_person_days:
        most = limits.max_person_days // people
        raise Refused(f"run: {people:,} people x {days:,} days is {people * days:,} "
                      f"person-days, over this server's limit of {limits.max_person_days:,} "
                      f"(credsim serve --max-person-days): at {people:,} people, at most "
                      f"{most:,} days ({most / YEAR:.1f} years); or fewer people")


def _within_limits(lever: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """People and days as this server allows them: the lever's range, its slider and the
    words beside it end at the server's limit, not the schema's."""
    limit = {"run.people": (limits.max_people, "--max-people"),
             "run.days": (limits.max_days, "--max-days")}.get(lever["key"])
    if limit is None:
        return lever
    most, option = limit
    lever = {**lever, "max": min(lever["max"], most)}
    lever["allowed"] = (f"{lever['min']:,} to {lever['max']:,} on this server "
                        f"(credsim serve {option})")
    if "slider" in lever:
        top = min(lever["slider"]["max"], most)
        lever["slider"] = {**lever["slider"], "max": top,
                           "min": min(lever["slider"]["min"], top)}
    return lever


def _verdict(body: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Each override checked alone (so that its message stands beside its lever), then
    all of them together with the server's limits."""
    preset = _preset(body.get("preset"))
    overrides = _overrides(body.get("set"), "set")
    errors = {}
    for key, value in overrides.items():
        try:
            _load(preset, {key: value})
        except Refused as exc:
            errors[key] = str(exc)
    whole = ""
    if not errors:
        try:
            _check_limits(_load(preset, overrides), limits)
        except Refused as exc:
            whole = str(exc)
    return {"ok": not errors and not whole, "errors": errors, "error": whole}


def _job_spec(body: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """A validated job: kind, preset, overrides and, for a comparison, the second
    setting's changes and the replicates."""
    from credsim.memory import check_fits

    kind = body.get("kind", "run")
    if kind not in ("run", "compare"):
        raise Refused(f"kind: expected 'run' or 'compare', got {_short(kind)}")
    preset = _preset(body.get("preset"))
    overrides = _overrides(body.get("set"), "set")
    scenario = _load(preset, overrides)
    _check_limits(scenario, limits)
    spec: dict[str, Any] = {"kind": kind, "preset": preset, "set": overrides}
    if kind == "compare":
        changes = _overrides(body.get("changes"), "changes")
        if not changes:
            raise Refused("changes: a comparison needs at least one lever set differently")
        _check_limits(_load(preset, {**overrides, **changes}), limits)
        reps = body.get("replicates", 2)
        if isinstance(reps, bool) or not isinstance(reps, int) or not (
                2 <= reps <= limits.max_replicates):
            raise Refused(f"replicates: expected a whole number from 2 to "
                          f"{limits.max_replicates} (credsim serve --max-replicates), got "
                          f"{_short(reps)}")
        spec |= {"changes": changes, "replicates": reps}
    try:
        check_fits(scenario)
    except InputError as exc:
        raise Refused(str(exc)) from None
    spec |= {"_people": scenario.run.people, "_days": scenario.run.days,
             "_demography": scenario.demography.enabled}
    return spec


def _job(jobs: Jobs, job_id: str, request: Request, share: str | None) -> Job:
    job = jobs.visible(job_id, request.state.session, share)
    if job is None:
        raise Refused("no such job (or it was started by another browser and not shared)",
                      404)
    return job


def _owner(job: Job, request: Request) -> bool:
    return secrets.compare_digest(job.session, request.state.session)


def _public_spec(job: Job) -> dict[str, Any]:
    return {k: v for k, v in job.spec.items() if not k.startswith("_")}


def _finished_run(job: Job) -> Job:
    if job.state != FINISHED or job.kind != "run":
        raise Refused("follow a person or a family in a finished run", 409)
    return job


# ---------------------------------------------------------------- progress


async def _stream(job: Job, request: Request):
    """Server-sent events: `progress` (days done, rate, time left) with the new timeseries
    rows, until the job ends with an `end` event."""
    sent = 0
    columns_sent = False
    while True:
        if await request.is_disconnected():
            return
        rows = job.rows
        new = rows[sent:] if sent <= len(rows) else []
        sent += len(new)
        payload = {**job.progress(), "rows": new}
        if job.columns and not columns_sent:
            payload["columns"], columns_sent = job.columns, True
        if job.state in ENDED:
            yield _event("end", payload)
            return
        yield _event("progress", payload)
        await asyncio.sleep(SSE_INTERVAL_SECONDS)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=_finite)}\n\n"


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return str(v)


# ---------------------------------------------------------------- presets, people


def _presets() -> list[dict[str, Any]]:
    """Each preset with its one line and its sources (the comment heading its file)."""
    import credsim
    from credsim.scenario.load import preset_text

    out = []
    for name, line in credsim.presets():
        head = []
        for text in preset_text(name).splitlines():
            if not text.startswith("#"):
                break
            head.append(text.lstrip("# ").strip())
        out.append({"name": name, "description": line, "sources": " ".join(head)})
    return out


def _person(job: Job, pid: int) -> dict[str, Any]:
    """One person's record as the portal shows it, with their household and contacts."""
    import pyarrow.compute as pc

    import credsim

    run = credsim.open(job.folder / "run")
    try:
        record = run.lookup(pid)
    except InputError as exc:
        raise Refused(str(exc), 404) from None
    data = asdict(record.record)
    data.pop("run", None)
    data["ledger"] = [_entry_view(row, entry)
                      for row, entry in zip(data["ledger"], record.record.ledger, strict=True)]
    people = run.table("people")
    wanted = [c for c in ("household", "degree", "contacts", "ties_dropped", "income",
                          "savings", "voice") if c in people.column_names]
    me = people.filter(pc.equal(people["id"], pid)).select(wanted).to_pylist()
    mine = people.filter(pc.equal(people["household"], me[0]["household"])) if me else None
    household = ([] if mine is None else
                 [r for r in mine.select(["id", "age_band"]).to_pylist() if r["id"] != pid])
    from credsim.serve.worker import hide_folder

    return {"record": _json_safe(data), "portal": hide_folder(str(record), job.folder),
            "person": _json_safe(me[0] if me else {}), "household": household}


def _family(job: Job, pid: int) -> dict[str, Any]:
    """One person's family over the run (credsim.serve.family)."""
    from credsim.serve.family import family

    try:
        return _json_safe(family(job.folder / "run", pid))
    except InputError as exc:
        raise Refused(str(exc), 404) from None


def _entry_view(row: dict[str, Any], entry) -> dict[str, Any]:
    """A ledger row as the page shows it: the change in the words of `credsim lookup`
    (stars for ratings, grade names with their sense) and the value in its unit."""
    change = entry.change
    if entry.kind.rpartition("_")[2] == "grade" and entry.delta:
        change += ", worse" if entry.delta > 0 else ", better"  # grades run best first
    shown = entry.value / 100 if entry.kind == "rating" else entry.value
    return {**row, "change": change, "shown": shown}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plotly_js() -> str:
    """Plotly's JavaScript as the plotly wheel ships it: nothing comes from the network."""
    found = resources.files("plotly") / "package_data" / "plotly.min.js"
    if not found.is_file():
        raise Refused("plotly's JavaScript is missing from the installed plotly package", 500)
    return str(found)
