"""The server's API on a real SQLite file and a real PostgreSQL server: jobs run by a real
worker through the library, access control on every endpoint, bad input, competitions."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("fastapi")
# Starlette's TestClient warns that it wants a newer httpx; the API under test is unaffected.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
pytest.importorskip("sqlalchemy")

from server_util import TINY, postgres, shared_cache, source  # noqa: E402,F401

SECRET_SEEDS = [987654321987, 123456789123]


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path):
    """(client, url, data, make_team) against a fresh database of either kind."""
    from fastapi.testclient import TestClient

    from propamm_jax.server import auth, db
    from propamm_jax.server.api import Settings, create_app

    shared_cache()
    data = tmp_path / "data"
    data.mkdir()
    url = db.default_url(data) if request.param == "sqlite" else request.getfixturevalue("postgres")()
    engine = db.connect(url)

    def make_team(name: str, admin: bool = False) -> dict:
        _, token = auth.add_team(engine, name, admin)
        return {"Authorization": f"Bearer {token}"}

    app = create_app(Settings(url, data, max_active_jobs=3, rate_per_s=1000, burst=1000))
    with TestClient(app) as client:
        yield client, url, data, make_team
    app.state.engine.dispose()
    engine.dispose()


def run_worker(url, data) -> None:
    from propamm_jax.server import worker

    worker.work(url, data, once=True)


def post_job(client, headers, kind="score", sources=None, config=None, **extra):
    body = {"kind": kind, "sources": sources or [source("flat_45bps", "mine.rs")],
            "config": config if config is not None else {**TINY, "opponents": ["undercut"]},
            **extra}
    r = client.post("/api/jobs", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """`propamm score` on the same inputs as the jobs below."""
    from server_util import STARTERS, propamm

    shared_cache()
    folder = tmp_path_factory.mktemp("cli")
    mine = folder / "mine.rs"
    mine.write_text(source("flat_45bps")["text"])
    out = folder / "results.json"
    res = propamm("score", str(mine), str(STARTERS / "undercut.rs"), "--simulations", "2",
                  "--steps", "300", "--epoch-len", "100", "--no-progress", "--no-journal",
                  "--output", str(out), timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(out.read_text())


def test_score_job_equals_cli_score(server, cli_results):
    from propamm_jax.outputs.results import first_difference

    client, url, data, make_team = server
    h = make_team("alpha")
    job_id = post_job(client, h)
    assert client.get(f"/api/jobs/{job_id}", headers=h).json()["state"] == "queued"
    run_worker(url, data)
    job = client.get(f"/api/jobs/{job_id}", headers=h).json()
    assert job["state"] == "done", job
    assert job["progress"] == {"done": 2, "total": 2}
    assert job["timings"]["running_s"] > 0
    results = client.get(f"/api/jobs/{job_id}/results", headers=h).json()
    assert first_difference(results, cli_results) is None
    assert results == cli_results
    edges = [s["strategies"][0]["final_edge"] for s in cli_results["sims"]]
    assert job["score"] == pytest.approx(sum(edges) / len(edges), rel=1e-15)
    csv = client.get(f"/api/jobs/{job_id}/results?format=csv", headers=h)
    assert csv.status_code == 200 and csv.text.startswith("seed,")
    assert len(csv.text.strip().splitlines()) == 1 + 2 * 2
    parquet = client.get(f"/api/jobs/{job_id}/results?format=parquet", headers=h)
    assert parquet.content[:4] == b"PAR1"
    report = client.get(f"/api/jobs/{job_id}/report", headers=h)
    assert report.status_code == 200 and 'id="leaderboard"' in report.text
    lines = [x["line"] for x in client.get(f"/api/jobs/{job_id}/logs", headers=h).json()["lines"]]
    assert lines[0].startswith("queued") and lines[-1] == "done"


def job_endpoints(app) -> list[str]:
    """Every API route that names a job, read from the app itself (a new one is covered)."""
    return sorted(r.path for r in app.routes if "{job_id}" in getattr(r, "path", ""))


def test_access_control_every_endpoint(server):
    client, url, data, make_team = server
    a, b = make_team("alpha"), make_team("beta")
    job_id = post_job(client, a, kind="submit")
    run_worker(url, data)
    paths = job_endpoints(client.app)
    assert len(paths) >= 6
    for template in paths:
        path = template.replace("{job_id}", job_id)
        assert client.get(path, headers=a).status_code == 200, path
        # Another team's job answers exactly as a job that does not exist.
        missing = client.get(template.replace("{job_id}", "f" * 32), headers=b)
        for headers, status in ((b, 404), ({}, 401), ({"Authorization": "Bearer nope"}, 401),
                                ({"Authorization": "Basic eA=="}, 401)):
            r = client.get(path, headers=headers)
            assert r.status_code == status, (path, headers, r.text)
            assert job_id not in r.text and "flat" not in r.text.lower()
            if status == 404:
                assert r.json() == missing.json()
    # Lists only ever show the caller's own jobs.
    assert client.get("/api/jobs", headers=b).json() == {"jobs": []}
    assert [j["id"] for j in client.get("/api/jobs", headers=a).json()["jobs"]] == [job_id]
    for path in ("/api/jobs", "/api/me", "/api/competitions", "/api/leaderboard"):
        assert client.get(path).status_code == 401, path
    assert client.post("/api/jobs", json={}).status_code in (401, 422)
    assert client.post("/api/competitions", json={}).status_code in (401, 422)


def assert_one_line(r, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert "\n" not in error and "Traceback" not in r.text, error
    for w in words:
        assert w in error, error


def test_bad_input_gets_one_line(server):
    client, url, data, make_team = server
    h = make_team("alpha")
    ok = {"kind": "score", "sources": [source()]}
    js = {**h, "content-type": "application/json"}
    assert_one_line(client.post("/api/jobs", headers=js, content=b'{"kind": "score",'), 422,
                    "malformed JSON")
    assert_one_line(client.post("/api/jobs", headers=h, json={**ok, "kind": "run"}), 422, "kind")
    big = {"name": "big.rs", "text": "x" * (64 * 1024 + 1)}
    assert_one_line(client.post("/api/jobs", headers=h, json={**ok, "sources": [big]}), 422,
                    "sources.0.text")
    for name in ("../evil.rs", "/etc/passwd.rs", "a/b.rs", "..\\x.rs", "x.so"):
        bad = {"name": name, "text": "fn main() {}"}
        assert_one_line(client.post("/api/jobs", headers=h, json={**ok, "sources": [bad]}), 422,
                        "sources.0.name")
    assert_one_line(client.post("/api/jobs", json=ok), 401, "missing token")
    assert_one_line(client.post("/api/jobs", headers={"Authorization": "Bearer wrong"}, json=ok),
                    401, "unknown token")
    assert_one_line(client.get("/api/jobs/0123456789abcdef", headers=h), 404, "no such job")
    assert_one_line(client.post("/api/jobs", headers=h, json={**ok, "extra": 1}), 422, "extra")
    assert_one_line(client.post("/api/jobs", headers=h, json={**ok, "config": {"steps": 0}}), 422,
                    "config.steps")
    assert_one_line(client.post("/api/jobs", headers=h,
                                json={**ok, "config": {"opponents": ["nobody"]}}), 422, "nobody")
    assert_one_line(client.get("/api/jobs/x/results?format=xlsx", headers=h), 422, "format")
    assert_one_line(client.get("/api/nothing-here", headers=h), 404, "not found")
    assert_one_line(client.post("/api/jobs", headers={**h, "content-length": "9999999"},
                                content=b"{}"), 413, "larger")


def test_queue_and_rate_limits(tmp_path):
    from fastapi.testclient import TestClient

    from propamm_jax.server import auth, db
    from propamm_jax.server.api import Settings, create_app

    url = db.default_url(tmp_path)
    _, token = auth.add_team(db.connect(url), "alpha")
    h = {"Authorization": f"Bearer {token}"}
    app = create_app(Settings(url, tmp_path, max_active_jobs=2, rate_per_s=0.01, burst=5))
    client = TestClient(app)
    post_job(client, h)
    post_job(client, h)
    assert_one_line(client.post("/api/jobs", headers=h, json={"kind": "score",
                                                             "sources": [source()]}),
                    429, "limit 2")
    codes = [client.get("/api/me", headers=h).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429], codes   # a burst of 5: 3 posts, then 2 more


def test_competition_hides_its_seeds(server):
    client, url, data, make_team = server
    admin, team = make_team("organiser", admin=True), make_team("alpha")
    spec = {"name": "winter cup", "steps": 300, "epoch_len": 100, "opponents": ["undercut"],
            "seeds": SECRET_SEEDS}
    assert_one_line(client.post("/api/competitions", headers=team, json=spec), 403, "admin")
    r = client.post("/api/competitions", headers=admin, json=spec)
    assert r.status_code == 201, r.text
    comp = r.json()
    assert comp["simulations"] == 2 and "seeds" not in comp
    assert_one_line(client.post("/api/competitions", headers=admin, json=spec), 409, "exists")
    job_id = post_job(client, team, kind="submit", competition=comp["id"])
    practice = post_job(client, team, kind="score", config={**TINY, "seed_start": 5})
    run_worker(url, data)
    run_worker(url, data)
    seen = []
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/logs", f"/api/jobs/{job_id}/results",
                 f"/api/jobs/{job_id}/results?format=csv", f"/api/jobs/{job_id}/report",
                 f"/api/jobs/{job_id}/receipt", "/api/competitions", "/api/leaderboard",
                 f"/api/leaderboard?competition={comp['id']}", "/api/jobs"):
        r = client.get(path, headers=team)
        assert r.status_code == 200, (path, r.text)
        seen.append(r.text)
    text = "\n".join(seen)
    for seed in SECRET_SEEDS:
        assert str(seed) not in text
    board = client.get("/api/leaderboard", headers=team).json()
    assert [row["team"] for row in board["rows"]] == ["alpha"]
    row = board["rows"][0]
    assert row["job"] == job_id and row["strategy"] == "mine.rs"
    assert row["receipt"]["seeds_sha256"] == comp["seeds_sha256"]
    assert row["receipt"]["strategies"][0]["name"] == "mine.rs"
    other = make_team("beta")
    assert client.get("/api/leaderboard", headers=other).json()["rows"][0]["job"] is None
    # The practice job ran the team's own seeds and is not on the leaderboard.
    assert client.get(f"/api/jobs/{practice}/results", headers=team).json()["sims"][0]["seed"] == 5


def test_failed_job_says_why_in_one_line(server):
    client, url, data, make_team = server
    h = make_team("alpha")
    broken = {"name": "broken.rs", "text": "this is not rust"}
    job_id = post_job(client, h, sources=[broken])
    run_worker(url, data)
    job = client.get(f"/api/jobs/{job_id}", headers=h).json()
    assert job["state"] == "failed"
    assert "broken.rs" in job["error"] and "\n" not in job["error"]
    assert str(data) not in job["error"]
    assert_one_line(client.get(f"/api/jobs/{job_id}/results", headers=h), 409, "failed")


def test_validate_job(server):
    client, url, data, make_team = server
    h = make_team("alpha")
    job_id = post_job(client, h, kind="validate",
                      sources=[source("flat_45bps"), {"name": "bad.rs", "text": "fn nope() {}"}])
    run_worker(url, data)
    job = client.get(f"/api/jobs/{job_id}", headers=h).json()
    assert job["state"] == "done" and job["summary"] == [{"file": "flat_45bps.rs", "ok": True},
                                                        {"file": "bad.rs", "ok": False}]
    reports = client.get(f"/api/jobs/{job_id}/results", headers=h).json()["reports"]
    assert any(line.startswith("FAIL bad.rs") for line in reports[1]["lines"])
    csv = client.get(f"/api/jobs/{job_id}/results?format=csv", headers=h).text
    assert csv.startswith("file,line") and "PASS flat_45bps.rs" in csv


def test_migrations_bring_an_old_database_up_to_date(tmp_path):
    import sqlalchemy as sa

    from propamm_jax.server import db

    url = db.default_url(tmp_path)
    engine = db.make_engine(url)
    with engine.begin() as conn:          # a database created by version 1 only
        db.metadata.create_all(conn, tables=[db.schema_version])
        db.MIGRATIONS[0](conn)
        conn.execute(db.schema_version.insert().values(version=1))
    assert db.migrate(engine) == len(db.MIGRATIONS)
    with engine.connect() as conn:
        assert db.current_version(conn) == len(db.MIGRATIONS)
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("jobs")}
    assert "ix_jobs_state_created" in indexes
    assert db.migrate(engine) == len(db.MIGRATIONS)   # idempotent


def test_team_add_prints_token_last_and_keeps_only_its_hash(tmp_path):
    import sqlalchemy as sa

    from server_util import add_team, propamm

    from propamm_jax.server import db

    token = add_team(tmp_path, "gamma")
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", token)
    engine = db.connect(db.default_url(tmp_path))
    with engine.connect() as conn:
        stored = conn.execute(sa.select(db.teams)).all()
    assert len(stored) == 1 and token not in repr(stored)
    dup = propamm("team", "add", "gamma", "--data", str(tmp_path))
    assert dup.returncode == 2 and dup.stderr.strip() == "propamm: error: team 'gamma' already exists"


@pytest.mark.parametrize("args, message", [
    (["--db", "postgresql://nobody@127.0.0.1:1/x"], "cannot open (connection failed"),
    (["--db", "foo://bar"], "--db 'foo://bar': not a usable database URL"),
    ([], "pass --data DIR (embedded SQLite there) or --db URL"),
])
def test_team_add_bad_database_is_one_line(args, message):
    from server_util import propamm

    out = propamm("team", "add", "x", *args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("propamm: error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_hostile_uploads_are_contained_and_reported_in_one_line(server):
    from conftest import FIXTURES

    client, url, data, make_team = server
    h = make_team("alpha")
    reader = {"name": "reader.rs", "text": (
        'const NAME: &str = "r";\n'
        'fn compute_swap(_d: &[u8]) -> u64 { std::fs::read("/etc/passwd").map(|v| v.len() as u64)'
        '.unwrap_or(0) }\n'
        'fn after_swap(_d: &[u8], _s: &mut [u8]) {}\n')}
    crasher = {"name": "panic_sometimes.rs",
               "text": (FIXTURES / "bad" / "panic_sometimes.rs").read_text()}
    rejected = post_job(client, h, sources=[reader])
    rejected_submit = post_job(client, h, kind="submit", sources=[reader])
    crashing = post_job(client, h, sources=[crasher],
                        config={"simulations": 6, "steps": 300, "epoch_len": 100,
                                "opponents": ["undercut"]})
    for _ in range(3):
        run_worker(url, data)
    for job_id in (rejected, rejected_submit):
        job = client.get(f"/api/jobs/{job_id}", headers=h).json()
        assert job["state"] == "failed"
        assert job["error"].startswith("reader.rs:2: source policy: `std::fs` is not allowed")
    job = client.get(f"/api/jobs/{crashing}", headers=h).json()
    assert job["state"] == "done" and job["progress"] == {"done": 5, "total": 6}   # 5 kept
    lines = [x["line"] for x in client.get(f"/api/jobs/{crashing}/logs", headers=h).json()["lines"]]
    assert ("FAILED seed 0: strategy panic_sometimes.rs: crash: in after_swap: SIGABRT: "
            "panicked at panic_sometimes.rs:30: deliberate failure at step 50") in lines
    assert len(client.get(f"/api/jobs/{crashing}/results", headers=h).json()["sims"]) == 5
