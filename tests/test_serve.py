"""`credsim serve`'s API, through FastAPI's TestClient: validation with the scenario schema,
the server's limits, sessions kept apart, share links, downloads by kind only, and jobs that
end cancelled leave nothing marked done. One small run is shared by the module."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's note on its httpx client, not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from credsim.serve.app import Config, create_app  # noqa: E402
from credsim.serve.jobs import Limits  # noqa: E402

SMALL = {"run.people": 2000, "run.days": 60}
HOSTS = ("testserver",)


def wait_for(client: TestClient, job_id: str, states: tuple[str, ...], timeout: float = 240,
              **params) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", params=params).json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {states}: {job}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("serve-data")
    app = create_app(Config(data, Limits(max_days=4000, max_people=50_000),
                            allowed_hosts=HOSTS))
    with TestClient(app) as client:
        yield app, client, data


@pytest.fixture(scope="module")
def finished(server):
    """One finished small run of rongcheng with more false court cases."""
    app, client, _ = server
    r = client.post("/api/jobs", json={"preset": "rongcheng",
                                        "set": {**SMALL, "channels.court.false_rate": 2e-4}})
    assert r.status_code == 201, r.text
    job = wait_for(client, r.json()["id"], ("finished", "failed", "cancelled"))
    assert job["state"] == "finished", job
    return job


def other_client(app) -> TestClient:
    """A second browser: its own cookie jar, so its own session."""
    return TestClient(app)


# ---------------------------------------------------------------- the model


def test_presets_and_levers_come_from_the_schema(server):
    _, client, _ = server
    presets = {p["name"]: p for p in client.get("/api/presets").json()}
    assert {"rongcheng", "baseline", "nosedive"} <= set(presets)
    assert "Sources" in presets["rongcheng"]["sources"]
    levers = {lv["key"]: lv for lv in client.get("/api/levers/rongcheng").json()["levers"]}
    review = levers["safeguards.review_capacity"]
    assert review["unit"] == "reviews/day/1e6" and review["min"] == 0 and review["common"]
    assert review["group"] == "safeguards" and "slider" in review
    assert levers["threats.insider_target"]["options"] == ["random", "critics", "enemies"]
    assert levers["channels.court.false_rate"]["group"] == "system"
    # Every parameter the resolved preset has is reachable.
    from credsim import load
    from credsim.serve.levers import flatten

    keys = {k for k, _ in flatten(load("rongcheng").model_dump(mode="json"))}
    assert keys - {"name", "description"} == set(levers)


def test_people_and_days_levers_end_at_the_servers_limits(server):
    _, client, _ = server
    limits = client.get("/api/levers/rongcheng").json()["limits"]
    levers = {lv["key"]: lv for lv in client.get("/api/levers/rongcheng").json()["levers"]}
    for key, most in (("run.people", limits["max_people"]), ("run.days", limits["max_days"])):
        lever = levers[key]
        assert lever["max"] == most and lever["slider"]["max"] <= most, lever
        assert f"{most:,}" in lever["allowed"] and "credsim serve --max-" in lever["allowed"]


def test_a_bad_value_is_refused_with_the_schemas_message(server):
    _, client, _ = server
    r = client.post("/api/validate", json={"preset": "rongcheng",
                                            "set": {"safeguards.review_capacity": -1}})
    assert r.status_code == 200
    body = r.json()
    assert not body["ok"]
    import credsim

    with pytest.raises(credsim.InputError) as exc:
        credsim.load("rongcheng", set={"safeguards.review_capacity": -1})
    assert body["errors"]["safeguards.review_capacity"] == str(exc.value)
    started = client.post("/api/jobs", json={"preset": "rongcheng",
                                              "set": {"safeguards.review_capacity": -1}})
    assert started.status_code == 400 and started.json()["error"] == str(exc.value)


@pytest.mark.parametrize("raw", [b'{"preset": "rongcheng", "set": {"run.days": NaN}}',
                                 b'{"preset": "rongcheng", "set": {"run.days": Infinity}}',
                                 b'{"preset": "rongcheng", "set": {"run.days": -Infinity}}'])
def test_non_finite_numbers_are_refused(server, raw):
    _, client, _ = server
    r = client.post("/api/validate", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "finite" in r.json()["error"]


@pytest.mark.parametrize("preset", ["../../etc/passwd", "/etc/passwd", "rongcheng.toml",
                                    "src/credsim/scenario/presets/rongcheng.toml", 7, None])
def test_presets_are_names_never_paths(server, preset):
    _, client, _ = server
    r = client.post("/api/jobs", json={"preset": preset, "set": SMALL})
    assert r.status_code == 400 and r.json()["error"].startswith("preset: expected one of")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.text(max_size=40), st.sampled_from(["..", "~/x.toml", "rongcheng\x00",
                                                          "RONGCHENG", " rongcheng"])))
def test_any_other_preset_name_is_refused(server, name):
    from credsim.scenario.load import preset_names

    _, client, _ = server
    r = client.post("/api/validate", json={"preset": name, "set": {}})
    if name in preset_names():
        assert r.status_code == 200
    else:
        assert r.status_code == 400 and r.json()["error"].startswith("preset: expected one of")
        assert client.get(f"/api/levers/{quote(name, safe='')}").status_code in (400, 404)


def test_keys_that_would_read_files_cannot_be_set(server):
    _, client, _ = server
    r = client.post("/api/validate", json={"preset": "rongcheng",
                                            "set": {"extends": "/etc/passwd"}})
    assert r.status_code == 400 and "cannot be set" in r.json()["error"]


def test_limits_are_enforced(server):
    _, client, _ = server
    r = client.post("/api/jobs", json={"preset": "rongcheng", "set": {"run.people": 60_000}})
    assert r.status_code == 400 and "limit of 50,000 people" in r.json()["error"]
    r = client.post("/api/jobs", json={"preset": "rongcheng",
                                       "set": {"run.people": 2000, "run.days": 4001}})
    assert r.status_code == 400 and "limit of 4,000 days" in r.json()["error"]
    r = client.post("/api/jobs", json={"kind": "compare", "preset": "rongcheng", "set": SMALL,
                                        "changes": {"safeguards.review_capacity": 100},
                                        "replicates": 11})
    assert r.status_code == 400 and r.json()["error"].startswith("replicates:")


def test_writes_must_be_json_from_the_same_origin(server):
    _, client, _ = server
    form = client.post("/api/jobs", data={"preset": "rongcheng"})
    assert form.status_code == 403
    cross = client.post("/api/jobs", json={"preset": "rongcheng", "set": SMALL},
                        headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    wrong_host = client.get("/api/presets", headers={"Host": "evil.example"})
    assert wrong_host.status_code == 400


_hostile_keys = st.one_of(
    st.sampled_from(["../x", "run..days", ".run", "run.", "__class__", "run.__dict__",
                     "safeguards.review_capacity.x", "channels.court.false_rate", "run.days",
                     "gates.flights.loss_days", "population.group_shares"]),
    st.text(min_size=1, max_size=20))
_hostile_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**20, 10**20),
    st.text(max_size=30), st.booleans(), st.none(),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.dictionaries(_hostile_keys, _hostile_values, max_size=3))
def test_any_override_gets_one_clear_answer(server, overrides):
    """Whatever a browser sends as overrides, the answer is a verdict with the schema's
    messages, never a server error."""
    import credsim

    _, client, _ = server
    r = client.post("/api/validate", json={"preset": "rongcheng", "set": overrides})
    assert r.status_code in (200, 400), r.text
    body = r.json()
    if r.status_code == 400:
        assert body["error"]
        return
    for key, message in body["errors"].items():
        with pytest.raises(credsim.InputError) as exc:
            credsim.load("rongcheng", set={key: overrides[key]})
        assert message == str(exc.value)
    if body["ok"]:
        credsim.load("rongcheng", set=overrides)  # valid: the schema accepts it too


# ---------------------------------------------------------------- a finished run


def test_a_run_streams_its_days_and_finishes_with_results(server, finished):
    app, client, data = server
    res = finished["results"]
    assert res["people"] == 2000 and res["days"] == 60
    assert len(res["timeseries"]["day"]) == 60
    assert res["story"][0]["title"] == "What was run."
    names = {m["measure"] for m in res["measures"]}
    assert {"cross_context_share", "sanction_impact_ratio", "wrongful_share"} <= names
    assert res["candidates"]["wrongful"], "the false cases sanctioned someone wrongfully"
    # The event stream of a finished job ends at once with its final state.
    text = client.get(f"/api/jobs/{finished['id']}/events").text
    assert "event: end" in text and '"state": "finished"' in text
    assert (data / finished["id"] / "results.json").is_file()


def test_the_summary_points_to_the_pages_download_not_the_command_line(finished):
    from credsim.serve.worker import CLI_BASELINE_HINT, LAB_BASELINE_HINT

    texts = " ".join(item["text"] for item in finished["results"]["story"])
    assert CLI_BASELINE_HINT not in texts and "credsim report" not in texts
    assert LAB_BASELINE_HINT in texts  # rongcheng's run has no baseline


def test_the_event_stream_carries_each_days_row(server):
    app, client, _ = server
    r = client.post("/api/jobs", json={"preset": "baseline", "set": SMALL})
    job_id = r.json()["id"]
    days, columns = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                payload = json.loads(line[5:])
                days += [row["day"] for row in payload["rows"]]
                columns = payload.get("columns", columns)
    assert days == list(range(60)), "every day's row arrives once, in order"
    assert columns["voice_events"]["unit"] == "events"
    assert payload["state"] == "finished"


def test_follow_a_person(server, finished):
    _, client, _ = server
    pid = finished["results"]["candidates"]["wrongful"][0]
    r = client.get(f"/api/jobs/{finished['id']}/person/{pid}")
    assert r.status_code == 200
    body = r.json()
    rec = body["record"]
    assert rec["id"] == pid and rec["sanctioned_wrongful"] in (True, False)
    assert any(e["record"] == "false" for e in rec["ledger"])
    import credsim

    run = credsim.open(Path(server[2]) / finished["id"] / "run")
    folder = Path(server[2]) / finished["id"]
    assert body["portal"] == str(run.lookup(pid)).replace(f"{folder}/", "")
    missing = client.get(f"/api/jobs/{finished['id']}/person/999999")
    assert missing.status_code == 404 and missing.json()["error"]


def test_a_persons_timeline_reads_as_lookup_does(server, finished):
    """Grades by name with their sense; every change in the words of `credsim lookup`."""
    import credsim

    _, client, data = server
    run = credsim.open(Path(data) / finished["id"] / "run")
    pids = finished["results"]["candidates"]["wrongful"][:3]
    grades = 0
    for pid in pids:
        shown = client.get(f"/api/jobs/{finished['id']}/person/{pid}").json()["record"]
        for row, entry in zip(shown["ledger"], run.lookup(pid).record.ledger, strict=True):
            assert row["change"].startswith(entry.change) and row["shown"] == entry.value
            if entry.kind == "grade" and entry.delta:
                grades += 1
                sense = "worse" if entry.grades.index(entry.change.split(" -> ")[1]) > \
                    entry.grades.index(entry.change.split(" -> ")[0]) else "better"
                assert row["change"] == f"{entry.change}, {sense}"
    assert grades, "the wrongfully sanctioned should have changed grade"


def test_ratings_are_shown_in_stars(server):
    import credsim

    _, client, data = server
    r = client.post("/api/jobs", json={"preset": "nosedive", "set": SMALL})
    assert r.status_code == 201, r.text
    job = wait_for(client, r.json()["id"], ("finished", "failed", "cancelled"))
    assert job["state"] == "finished", job
    run = credsim.open(Path(data) / job["id"] / "run")
    pid = next(p for p in range(2000) if any(
        e.kind == "rating" for e in run.lookup(p).record.ledger))
    ledger = client.get(f"/api/jobs/{job['id']}/person/{pid}").json()["record"]["ledger"]
    ratings = [e for e in ledger if e["kind"] == "rating"]
    assert ratings and all(1 <= e["shown"] <= 5 for e in ratings)
    assert all(e["shown"] == e["value"] / 100 and e["change"].endswith(" stars")
               for e in ratings)
    # The family's lines are in stars too, as the people table holds ratings at the end.
    family = client.get(f"/api/jobs/{job['id']}/family/{pid}").json()
    assert family["kind"] == "rating" and family["unit"] == "stars"
    line = family["lines"][str(pid)]
    assert line["value"][1:-1] == [e["shown"] for e in ratings]
    assert line["value"][-1] == ratings[-1]["shown"] and line["day"][-1] == 59


def test_no_server_folder_is_shown(server, finished):
    """The portal view and the report name the run `run`, never the server's folder."""
    _, client, data = server
    pid = finished["results"]["candidates"]["wrongful"][0]
    body = client.get(f"/api/jobs/{finished['id']}/person/{pid}").text
    report = client.get(f"/api/jobs/{finished['id']}/download/report").text
    status = client.get(f"/api/jobs/{finished['id']}").text
    for shown in (body, report, status):
        assert str(data) not in shown and str(Path(data).resolve()) not in shown
    assert "run: scenario" in client.get(
        f"/api/jobs/{finished['id']}/person/{pid}").json()["portal"]


def test_downloads_by_kind(server, finished):
    _, client, data = server
    base = f"/api/jobs/{finished['id']}/download"
    report = client.get(f"{base}/report")
    assert report.status_code == 200 and report.text.lower().startswith("<!doctype html")
    toml = client.get(f"{base}/scenario").text
    import tomllib

    import credsim

    run = credsim.open(data / finished["id"] / "run")
    assert credsim.load(_written(toml, data)) == run.scenario  # reproduces the run
    z = client.get(f"{base}/zip")
    assert z.status_code == 200 and z.content[:2] == b"PK"
    assert tomllib.loads(toml)["run"]["people"] == 2000


def _written(text: str, folder: Path) -> str:
    path = folder / "downloaded.toml"
    path.write_text(text, "utf-8")
    return str(path)


@pytest.mark.parametrize("tail", [
    "download/manifest", "download/..%2F..%2Fetc%2Fpasswd", "download/../../../etc/passwd",
    "download/%2e%2e%2fresults.json", "download/report%00", "download/REPORT"])
def test_no_other_file_can_be_downloaded(server, finished, tail):
    _, client, _ = server
    r = client.get(f"/api/jobs/{finished['id']}/{tail}")
    assert r.status_code in (404, 422), r.status_code
    assert "root:" not in r.text and '"timeseries"' not in r.text


@pytest.mark.parametrize("job_id", ["..", "..%2F..%2Fetc", "%2e%2e", "results.json",
                                    "../../etc/passwd", "A" * 22])
def test_hostile_job_ids_find_nothing(server, job_id):
    _, client, _ = server
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/download/report",
                 f"/api/jobs/{job_id}/person/1", f"/api/jobs/{job_id}/family/1"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)


# ---------------------------------------------------------------- sessions and sharing


def test_another_browser_can_neither_see_nor_cancel_a_job(server, finished):
    app, client, _ = server
    stranger = other_client(app)
    job_id = finished["id"]
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/events",
                 f"/api/jobs/{job_id}/download/report", f"/api/jobs/{job_id}/person/1",
                 f"/api/jobs/{job_id}/family/1"):
        assert stranger.get(path).status_code == 404, path
    assert stranger.post(f"/api/jobs/{job_id}/cancel", json={}).status_code == 404
    assert job_id not in {j["id"] for j in stranger.get("/api/jobs").json()}
    assert job_id in {j["id"] for j in client.get("/api/jobs").json()}
    wrong = stranger.get(f"/api/jobs/{job_id}", params={"share": "x" * 22})
    assert wrong.status_code == 404


def test_a_share_link_reads_but_does_not_cancel(server, finished):
    app, _, _ = server
    stranger = other_client(app)
    share = {"share": finished["share"]}
    job = stranger.get(f"/api/jobs/{finished['id']}", params=share).json()
    assert job["state"] == "finished" and job["owner"] is False
    assert stranger.get(f"/api/jobs/{finished['id']}/download/report",
                        params=share).status_code == 200
    pid = finished["results"]["candidates"]["wrongful"][0]
    assert stranger.get(f"/api/jobs/{finished['id']}/person/{pid}",
                        params=share).status_code == 200
    assert stranger.get(f"/api/jobs/{finished['id']}/family/{pid}",
                        params=share).status_code == 200
    assert stranger.post(f"/api/jobs/{finished['id']}/cancel", params=share,
                         json={}).status_code == 404


def test_session_cookie_is_http_only(server):
    app, _, _ = server
    fresh = other_client(app)
    r = fresh.get("/")
    cookie = r.headers["set-cookie"]
    assert "credsim_session=" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()


FORGED = "EvilFixedSessionTokenAAAAAAAAAAAAAAAAAAAAAA"


@pytest.mark.parametrize("planted", [FORGED, "a" * 43 + "." + "b" * 43, "x.y", "%C3%A9." * 9])
def test_a_planted_cookie_gets_a_fresh_session(server, planted):
    """Another page on this machine can set a cookie for 127.0.0.1 (cookies ignore the
    port); the server must not adopt it as a session."""
    app, _, _ = server
    victim = other_client(app)
    victim.cookies.set("credsim_session", planted)
    r = victim.get("/api/jobs")
    issued = r.cookies.get("credsim_session")
    assert issued and issued != planted


def test_a_forged_cookie_cannot_reach_anothers_jobs(server):
    app, _, _ = server
    victim, attacker = other_client(app), other_client(app)
    victim.cookies.set("credsim_session", FORGED)
    r = victim.post("/api/jobs", json={"preset": "baseline", "set": SMALL})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    try:
        attacker.cookies.set("credsim_session", FORGED)
        assert job_id not in {j["id"] for j in attacker.get("/api/jobs").json()}
        assert attacker.get(f"/api/jobs/{job_id}").status_code == 404
        assert attacker.post(f"/api/jobs/{job_id}/cancel", json={}).status_code == 404
        assert job_id in {j["id"] for j in victim.get("/api/jobs").json()}
    finally:
        victim.post(f"/api/jobs/{job_id}/cancel", json={})


def test_a_signed_cookie_is_honoured_by_its_server_only(server, tmp_path):
    app, client, _ = server
    client.get("/api/jobs")
    token = client.cookies.get("credsim_session")
    again = other_client(app)
    again.cookies.set("credsim_session", token)
    assert "credsim_session" not in again.get("/api/jobs").cookies  # kept, not replaced
    foreign = TestClient(create_app(Config(tmp_path, allowed_hosts=HOSTS)))
    foreign.cookies.set("credsim_session", token)
    assert foreign.get("/api/jobs").cookies.get("credsim_session") != token


# ---------------------------------------------------------------- hostile bodies


def _nested(depth: int, shape: str):
    value: object = 1
    for _ in range(depth):
        value = [value] if shape == "list" else {"a": value}
    return value


DEEP = [(shape, depth) for shape in ("list", "dict") for depth in (17, 600, 5000)]


@pytest.mark.parametrize("shape,depth", DEEP)
def test_deep_values_are_refused_by_credsim_load(shape, depth):
    import credsim
    from credsim.errors import InputError

    with pytest.raises(InputError, match="nested more than 16 levels deep"):
        credsim.load("rongcheng", set={"points.deltas": _nested(depth, shape)})


@pytest.mark.parametrize("shape,depth", DEEP)
@pytest.mark.parametrize("where", ["validate", "set", "changes"])
def test_deep_json_gets_one_clear_answer(server, shape, depth, where):
    """As the browser sends it: JSON text (json.dumps itself recurses, so it is written)."""
    _, client, _ = server
    opening, closing = ("[", "]") if shape == "list" else ('{"a":', "}")
    deep = '{"run.deep":' + opening * depth + "1" + closing * depth + "}"
    small = json.dumps(SMALL)[1:-1]

    def post(path: str, text: str):
        return client.post(path, content=text, headers={"content-type": "application/json"})

    if where == "validate":
        r = post("/api/validate", '{"preset": "rongcheng", "set": ' + deep + "}")
        # Refused by the JSON decoder as a whole, or by the schema beside its lever.
        verdict = r.json()
        message = verdict["error"] if r.status_code == 400 else verdict["errors"]["run.deep"]
        assert r.status_code in (200, 400), r.text
        assert "nested more than 16 levels deep" in message
        return
    if where == "set":
        body = '{"preset": "rongcheng", "set": {' + small + "," + deep[1:] + "}"
    else:
        body = ('{"preset": "rongcheng", "kind": "compare", "set": {' + small
                + '}, "changes": ' + deep + "}")
    r = post("/api/jobs", body)
    assert r.status_code == 400, r.text
    assert "nested more than 16 levels deep" in r.json()["error"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.recursive(st.integers() | st.text(max_size=3),
                    lambda kids: st.lists(kids, max_size=2) | st.dictionaries(
                        st.text(max_size=2), kids, max_size=2), max_leaves=60))
def test_any_nested_value_gets_a_verdict_not_a_crash(server, value):
    _, client, _ = server
    r = client.post("/api/validate", json={"preset": "rongcheng",
                                          "set": {"points.deltas": value}})
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False


def test_a_body_declared_too_large_is_refused_before_reading(server):
    _, client, _ = server
    read = []

    def body():
        read.append(1)
        yield b"{}"

    r = client.post("/api/validate", content=body(),
                    headers={"content-type": "application/json",
                             "content-length": str(10**9)})
    assert r.status_code == 413 and "request too large" in r.json()["error"]
    assert client.post("/api/validate", content=b"{}", headers={
        "content-type": "application/json", "content-length": "many"}).status_code == 400


def test_a_streamed_body_is_cut_off_at_the_limit():
    """A body without Content-Length (chunked): the server stops reading at the limit.
    (TestClient buffers what it sends, so the app's reader is given the chunks itself.)"""
    import asyncio

    from starlette.requests import Request

    from credsim.serve.app import MAX_BODY_BYTES, Refused, _read_capped

    chunk, received = b" " * 65536, []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": chunk, "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(Refused, match="request too large") as refused:
        asyncio.run(_read_capped(request))
    assert refused.value.status == 413
    assert len(received) == MAX_BODY_BYTES // len(chunk) + 1


# ---------------------------------------------------------------- the tour


def test_the_journalist_step_shows_wrongful_sanctions(tmp_path):
    """The tour's second step, run at its own size and the preset's seed, sanctions some
    of the critics on insiders' fabricated records: the step has something to show."""
    from importlib import resources

    import credsim

    tour = json.loads((resources.files("credsim.serve") / "static" / "tour.json").read_text())
    step = next(s for s in tour if s["title"].startswith("A journalist"))
    run = credsim.run(step["preset"], set=step["set"], out=tmp_path / "run")
    wrongful = run.sql(
        "SELECT s.id, count(*) AS uses FROM sanctions s WHERE s.wrongful AND "
        "s.effect = 'sanction' GROUP BY s.id").to_pylist()
    assert wrongful, "nobody wrongfully sanctioned: the step shows nothing"
    edited = {r["id"] for r in run.sql(
        "SELECT DISTINCT id FROM ledger WHERE record = 'insider'").to_pylist()}
    assert {r["id"] for r in wrongful} & edited, "sanctions should follow insiders' edits"


# ---------------------------------------------------------------- cancelling and queueing


def test_cancel_leaves_nothing_marked_done(server):
    app, client, data = server
    long = client.post("/api/jobs", json={"preset": "rongcheng",
                                           "set": {"run.people": 2000, "run.days": 4000}})
    queued = client.post("/api/jobs", json={"preset": "baseline", "set": SMALL})
    long_id, queued_id = long.json()["id"], queued.json()["id"]
    assert client.get(f"/api/jobs/{queued_id}").json()["state"] == "queued"
    deadline = time.monotonic() + 120
    while client.get(f"/api/jobs/{long_id}").json().get("done", 0) < 1:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    assert client.post(f"/api/jobs/{queued_id}/cancel", json={}).json()["state"] == "cancelled"
    client.post(f"/api/jobs/{long_id}/cancel", json={})
    for job_id in (long_id, queued_id):
        job = wait_for(client, job_id, ("cancelled", "finished", "failed"))
        assert job["state"] == "cancelled" and job["results"] is None
        assert not (data / job_id).exists(), "a cancelled job leaves no folder"
        assert client.get(f"/api/jobs/{job_id}/download/report").status_code == 409


def test_one_browser_cannot_fill_the_queue(tmp_path):
    app = create_app(Config(tmp_path, Limits(max_per_session=1), allowed_hosts=HOSTS))
    with TestClient(app) as client:
        first = client.post("/api/jobs", json={"preset": "baseline", "set": SMALL})
        assert first.status_code == 201
        second = client.post("/api/jobs", json={"preset": "baseline", "set": SMALL})
        assert second.status_code == 429 and "at most 1" in second.json()["error"]
        other = other_client(app).post("/api/jobs", json={"preset": "baseline", "set": SMALL})
        assert other.status_code == 201 and other.json()["state"] == "queued"
        client.post(f"/api/jobs/{first.json()['id']}/cancel", json={})


def test_the_exposure_warning_and_port_check():
    from credsim.errors import InputError
    from credsim.serve.server import _check_port, allowed_hosts, exposure_warning

    assert exposure_warning("127.0.0.1") is None and exposure_warning("127.0.0.2") is None
    assert exposure_warning("::1") is None
    warning = exposure_warning("0.0.0.0")
    assert "WARNING" in warning and "DNS rebinding" in warning and "--allow-host" in warning
    assert "*" not in allowed_hosts("0.0.0.0")
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match="cannot listen there"):
            _check_port("127.0.0.1", port)


def _serve(port: int, tmp: Path, *extra: str):
    import os
    import subprocess
    import sys

    src = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": src}
    return subprocess.Popen([sys.executable, "-m", "credsim", "serve", "--port", str(port),
                             "--no-browser", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_healthy(port: int, proc) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.stdout.read().decode()) from None
            time.sleep(0.2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_start_leaves_no_folder(tmp_path):
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _serve(taken.getsockname()[1], tmp_path)
        out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2 and "cannot listen there" in out
    proc = _serve(_free_port(), tmp_path, "--host", "192.0.2.1")  # TEST-NET: not ours
    assert proc.wait(60) == 2, subprocess.list2cmdline(proc.args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_stopping_the_server_mid_run_leaves_nothing_half_made(tmp_path, signum):
    """SIGTERM, or Ctrl-C to the whole process group, during a run: the temporary folder
    goes (without --data), and with --data no unfinished job's folder stays."""
    import os
    import signal
    import urllib.request

    for data in (None, tmp_path / "data"):
        port = _free_port()
        tmp = tmp_path / f"tmp-{port}"
        tmp.mkdir()
        proc = _serve(port, tmp, *(["--data", str(data)] if data else []))
        _wait_healthy(port, proc)
        body = json.dumps({"preset": "rongcheng",
                           "set": {"run.people": 2000, "run.days": 1500}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/jobs", data=body,
                                         headers={"Content-Type": "application/json"})
        job = json.loads(urllib.request.urlopen(request, timeout=30).read())
        deadline = time.monotonic() + 60
        while not (folder := (data or next(tmp.iterdir())) / job["id"]).exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.5)  # the worker is simulating
        if signum == "SIGINT":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode()
        assert "Traceback" not in out, out
        assert not folder.exists(), sorted(folder.rglob("*"))
        assert list(tmp.iterdir()) == [], out


def test_every_interface_still_checks_the_host(tmp_path):
    """Bound to 0.0.0.0 the lab answers to this machine's names and --allow-host names
    only: a rebinding site's name (Host: evil.example) is refused."""
    import socket

    from credsim.serve.server import allowed_hosts

    app = create_app(Config(tmp_path, allowed_hosts=allowed_hosts("0.0.0.0", ("lab.example",))))
    with TestClient(app) as client:
        for name in ("127.0.0.1:8765", socket.gethostname(), "lab.example:80"):
            assert client.get("/api/health", headers={"host": name}).status_code == 200, name
        for name in ("evil.example", "lab.example.evil.example", "127.0.0.1.nip.io"):
            assert client.get("/api/health", headers={"host": name}).status_code == 400, name


def test_a_killed_worker_is_explained():
    """A worker that ends by SIGKILL (the kernel's answer to a lack of memory) is named as
    such; an ordinary non-zero exit gives its code."""
    import signal

    from credsim.serve.jobs import worker_stopped

    assert "want of memory" in worker_stopped(-int(signal.SIGKILL))
    assert "signal 15" in worker_stopped(-int(signal.SIGTERM))
    assert "want of memory" not in worker_stopped(-int(signal.SIGTERM))
    assert worker_stopped(3) == "the worker stopped (exit code 3)"


# ---------------------------------------------------------------- decades and families

DECADES = {"run.people": 1500, "run.days": 3653, "demography.enabled": True}  # 10 years


@pytest.fixture(scope="module")
def decades(server):
    """One finished run of rongcheng over ten years, with demography."""
    _, client, _ = server
    r = client.post("/api/jobs", json={"preset": "rongcheng", "set": DECADES})
    assert r.status_code == 201, r.text
    job = wait_for(client, r.json()["id"], ("finished", "failed", "cancelled"), timeout=600)
    assert job["state"] == "finished", job
    return job


def test_demography_is_a_lever_group_up_front(server):
    _, client, _ = server
    levers = {lv["key"]: lv for lv in client.get("/api/levers/rongcheng").json()["levers"]}
    switch = levers["demography.enabled"]
    assert switch["group"] == "demography" and switch["control"] == "toggle"
    assert switch["value"] is False and switch["common"]  # up front, though off
    assert levers["demography.adult_age"]["group"] == "demography"
    assert not levers["demography.adult_age"]["common"]


def test_person_days_are_limited_with_one_clear_message(tmp_path):
    app = create_app(Config(tmp_path, Limits(max_person_days=10_000_000),
                            allowed_hosts=HOSTS))
    with TestClient(app) as client:
        assert client.get("/api/levers/rongcheng").json()["limits"]["max_person_days"] == (
            10_000_000)
        over = {"run.people": 2000, "run.days": 5001, "demography.enabled": True}
        verdict = client.post("/api/validate", json={"preset": "rongcheng", "set": over}).json()
        assert not verdict["ok"] and not verdict["errors"]
        assert "10,002,000 person-days" in verdict["error"]
        assert "--max-person-days" in verdict["error"] and "5,000 days" in verdict["error"]
        r = client.post("/api/jobs", json={"preset": "rongcheng", "set": over})
        assert r.status_code == 400 and r.json()["error"] == verdict["error"]
        within = {**over, "run.days": 5000}
        assert client.post("/api/validate", json={"preset": "rongcheng",
                                                  "set": within}).json()["ok"]
    assert not list(tmp_path.iterdir()), "a refused job makes no folder"


def test_a_decades_run_counts_its_years(server, decades):
    res = decades["results"]
    assert res["demography"] is True and decades["years"] == pytest.approx(3653 / 365.25)
    assert decades["year"] == 11  # the run's last day is in its eleventh (partial) year
    series = res["timeseries"]
    assert {"people_alive", "births", "deaths", "came_of_age"} <= set(series)
    assert "on a given day" in res["columns"]["births"]["label"]
    assert "on a given day" not in res["columns"]["people_alive"]["label"]
    births = sum(series["births"])
    run, _ = _people(server[2], decades)
    ledger = run.sql("SELECT count(*) AS n FROM ledger WHERE kind = 'life' AND "
                     "cause = 'birth'").to_pylist()[0]["n"]
    assert births == ledger > 0


def _people(data: Path, job: dict):
    import credsim

    run = credsim.open(data / job["id"] / "run")
    return run, {r["id"]: r for r in run.table("people").to_pylist()}


def test_follow_a_family_matches_the_people_table(server, decades):
    """Each member's relation, checked against parent1/parent2/partner of the people
    table; life events against the ledger's `life` rows."""
    _, client, data = server
    run, people = _people(data, decades)
    fams = decades["results"]["families"]
    assert fams["three_generations"] and fams["listed_parents"], fams
    life = run.sql("SELECT id, day, cause FROM ledger WHERE kind = 'life'").to_pylist()
    for pid in fams["three_generations"][:3] + fams["listed_parents"][:3]:
        f = client.get(f"/api/jobs/{decades['id']}/family/{pid}").json()
        me = people[pid]
        members = {m["id"]: m for m in f["members"]}
        assert members[pid]["relation"] == "self" and len(members) == len(f["members"])
        children = {i for i, p in people.items() if pid in (p["parent1"], p["parent2"])}
        grandchildren = {i for i, p in people.items()
                         if children & {p["parent1"], p["parent2"]}}
        by = {rel: {i for i, m in members.items() if m["relation"] == rel}
              for rel in ("parent", "child", "grandchild", "partner")}
        assert by["parent"] == {p for p in (me["parent1"], me["parent2"]) if p >= 0}
        assert by["child"] == children - {pid}
        assert by["grandchild"] == grandchildren - children - {pid}
        co_parents = {q for c in children for q in (people[c]["parent1"], people[c]["parent2"])}
        assert by["partner"] == ({me["partner"]} | co_parents) - {-1, pid} - by["parent"]
        for m in f["members"]:
            assert m["sex"] == people[m["id"]]["sex"]
            assert m["alive"] == people[m["id"]]["alive"]
        assert sorted((e["id"], e["day"], e["cause"]) for e in f["events"]) == sorted(
            (r["id"], r["day"], r["cause"]) for r in life if r["id"] in members)
    # Each family offered once: a couple shares its grandchildren, so one of the two.
    def grandchildren_of(g: int) -> frozenset[int]:
        kids = {i for i, p in people.items() if g in (p["parent1"], p["parent2"])}
        return frozenset(i for i, p in people.items() if kids & {p["parent1"], p["parent2"]})

    offered = [grandchildren_of(g) for g in fams["three_generations"]]
    assert all(offered) and len(set(offered)) == len(offered)
    grandparent = client.get(
        f"/api/jobs/{decades['id']}/family/{fams['three_generations'][0]}").json()
    assert {m["generation"] for m in grandparent["members"]} >= {0, 1, 2}
    listed = client.get(f"/api/jobs/{decades['id']}/family/{fams['listed_parents'][0]}").json()
    assert listed["members"][0]["ever_listed"] is True
    assert any(m["relation"] == "child" for m in listed["members"])


def test_a_family_members_score_line_follows_the_ledger(server, decades):
    _, client, data = server
    run, people = _people(data, decades)
    pid = decades["results"]["families"]["listed_parents"][0]
    f = client.get(f"/api/jobs/{decades['id']}/family/{pid}").json()
    assert f["kind"] == "score"
    for key, line in f["lines"].items():
        member = int(key)
        rows = run.sql(f"SELECT day, value FROM ledger WHERE entity = 'person' AND id = "
                       f"{member} AND kind = 'score' ORDER BY day, file_row_number").to_pylist()
        # From the day the score was first held, through each change, to the end (or death).
        assert line["day"][1:-1] == [r["day"] for r in rows]
        assert line["value"][1:-1] == [r["value"] for r in rows]
        assert line["value"][-1] == (rows[-1]["value"] if rows else line["value"][0])
        if rows or people[member]["alive"]:
            assert line["value"][-1] == people[member]["score"] or not people[member]["alive"]
        assert line["day"] == sorted(line["day"]) and line["day"][-1] <= 3652


def test_family_without_demography(server, finished):
    """A fixed population still has households of parents and children; no life events."""
    _, client, data = server
    assert finished["results"]["demography"] is False and "year" not in finished
    pid = finished["results"]["candidates"]["wrongful"][0]
    f = client.get(f"/api/jobs/{finished['id']}/family/{pid}").json()
    assert f["members"][0]["id"] == pid and f["events"] == []
    assert all(m["age"] is None for m in f["members"])


@pytest.fixture(scope="module")
def finished_ref(finished) -> tuple[str, int]:
    """The finished run's id and people (short, for Hypothesis to print)."""
    return finished["id"], finished["results"]["people"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(person=st.one_of(st.integers(-10**30, 10**30), st.text(max_size=20),
                        st.sampled_from(["1.5", "1e3", "0x10", "../0", "0 OR 1=1", "-0",
                                         "2147483648", "9" * 40])))
def test_hostile_family_ids_get_one_clear_answer(server, finished_ref, person):
    """Whatever is sent as a person, the answer is the family, a 404 with a message, or
    FastAPI's 422 for what is not an integer: never a server error."""
    _, client, _ = server
    job_id, people = finished_ref
    r = client.get(f"/api/jobs/{job_id}/family/" + quote(str(person), safe=""))
    assert r.status_code in (200, 404, 422), (person, r.status_code, r.text)
    body = r.json()
    if r.status_code == 200:
        assert 0 <= body["person"] < people and body["person"] == int(str(person))
    else:  # ours names the person; a path that is no person's finds no route
        assert body.get("error") or body.get("detail")
