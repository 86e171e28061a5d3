"""The page's routes without a browser: served to anyone, only its own files, strict
headers; a 401 to the page's requests challenges for a token only."""
from __future__ import annotations

from hwut.ui.pages import ASSETS, load_assets


def test_the_page_and_its_files_are_served_without_sign_in(env):
    r = env.client.simulate_get("/ui/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert b'src="/ui/app.js"' in r.content
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    for name, kind in ASSETS.items():
        r = env.client.simulate_get(f"/ui/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == kind
    r = env.client.simulate_get("/")
    assert r.status_code == 302 and r.headers["location"].endswith("/ui/")


def test_nothing_but_the_page_files(env):
    for name in ("../pages.py", "pages.py", "%2e%2e%2fpages.py", "static", "x" * 5000):
        r = env.client.simulate_get(f"/ui/{name}")
        assert r.status_code == 404, name
        assert b"import falcon" not in r.content and r.json["description"]


def test_the_shipped_files_are_all_there():
    files = load_assets()
    assert set(files) == set(ASSETS) and all(files.values())


def test_a_401_to_the_page_challenges_for_a_token_only(env):
    r = env.client.simulate_get("/apiv1/auth_test", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
    r = env.client.simulate_get("/apiv1/auth_test", headers={"Authorization": "Bearer nope",
                                                             "X-HWUT-Page": "1"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="hwut"'
    assert r.json["description"] == "Wrong user name, password or token."


def test_admins_filter_jobs_by_owner_and_others_cannot(env):
    mine = env.submit("alice", firmware="blink", limit=1).json["id"]
    theirs = env.submit("bob", firmware="blink", limit=1).json["id"]
    ids = [j["id"] for j in env.get("/apiv1/jobs?owner=alice", "admin").json]
    assert ids == [mine]
    ids = [j["id"] for j in env.get("/apiv1/jobs?owner=alice", "bob").json]
    assert ids == [theirs]  # not an admin: owner= is ignored, bob sees his own


def test_the_executable_is_downloadable_by_its_owner(env):
    job_id = env.submit("alice", firmware="blink", limit=1).json["id"]
    from fixture_firmware import image
    r = env.get(f"/apiv1/jobs/{job_id}/executable")
    assert r.status_code == 200 and r.content == image("blink")
    assert env.get(f"/apiv1/jobs/{job_id}/executable", "bob").status_code == 403
