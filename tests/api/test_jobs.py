"""Job status and enqueueing through the management API."""

from __future__ import annotations

from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from tests.api.helpers import basic, make_user, walk
from tests.jobs.test_jobs import wait_for


def test_enqueue_and_read_status(client: TestClient):
    queued = client.post("/api/jobs", json={"name": "ping", "args": {"fail_times": 0}})
    assert queued.status_code == 202, queued.text
    job = queued.json()
    assert job["status"] == "queued" and job["attempts"] == 0 and job["project_id"] == 1
    assert client.get(f"/api/jobs/{job['id']}").json() == job
    assert [j["id"] for j in client.get("/api/jobs", params={"name": "ping"}).json()["data"]] == [
        job["id"]
    ]
    assert client.get("/api/jobs", params={"status": "failed"}).json()["data"] == []


def test_status_follows_the_consumer(client: TestClient, runtime: Runtime):
    job_id = client.post("/api/jobs", json={"name": "ping"}).json()["id"]
    runtime.jobs.start_consumer(1)
    try:
        wait_for(runtime, job_id, {"succeeded"})
    finally:
        runtime.jobs.stop_consumer()
    done = client.get(f"/api/jobs/{job_id}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["finished_at"]


def test_enqueue_errors(client: TestClient):
    unknown = client.post("/api/jobs", json={"name": "nope"})
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["path"] == "body.name"
    bad_args = client.post("/api/jobs", json={"name": "ping", "args": {"colour": "red"}})
    assert bad_args.status_code == 400 and bad_args.json()["errors"][0]["path"] == "args"
    assert client.get("/api/jobs/not-a-job").status_code == 404


def test_only_admins_enqueue_and_users_see_their_projects_jobs(client: TestClient):
    job_id = client.post("/api/jobs", json={"name": "ping"}).json()["id"]
    user = make_user(client, "v@example.com")
    viewer = basic("v@example.com", "password-123")
    assert client.post("/api/jobs", json={"name": "ping"}, headers=viewer).status_code == 403
    # not a member of project 1 yet: the job is invisible
    assert client.get("/api/jobs", headers=viewer).json()["data"] == []
    assert client.get(f"/api/jobs/{job_id}", headers=viewer).status_code == 404
    client.put(f"/api/projects/1/members/{user['id']}", json={"role": "viewer"})
    assert client.get(f"/api/jobs/{job_id}", headers=viewer).status_code == 200


def test_jobs_pagination_newest_first(client: TestClient):
    ids = [client.post("/api/jobs", json={"name": "ping"}).json()["id"] for _ in range(7)]
    listed = [j["id"] for j in walk(client, "/api/jobs", 3)]
    assert sorted(listed) == sorted(ids) and len(set(listed)) == 7
    stamps = [j["enqueued_at"] for j in walk(client, "/api/jobs", 2)]
    assert stamps == sorted(stamps, reverse=True)


def test_bad_job_cursor_is_a_400(client: TestClient):
    for cursor in ("%%%", "bm8tc2VwYXJhdG9y", "MjAyMC0wMS0wMXx4"):
        response = client.get("/api/jobs", params={"cursor": cursor})
        assert response.status_code == 400, (cursor, response.text)
        assert response.json()["errors"][0]["path"] == "cursor"
