"""Several images in one job (issue 13): a bootloader at 0x08000000 and its application
at 0x0800A000, flashed apart as a lab does, through the real waitress server and the
client on the sim; the bootloader checks the application's CRC-32, so a missing or
corrupted application shows in its output; overlapping images are refused naming both."""
from __future__ import annotations

import hashlib
import uuid

import cli_served
import falcon.testing
import httpx
import junitparser
import pytest
from cli_served import Served
from fixture_firmware import expected, image, path
from hwut_testenv import Env

from hwut.client import Client, HwutError, resolve_settings
from hwut.images import ImageRef

serve, served = cli_served.serve, cli_served.served  # the fixtures

BOARD = "nucleo-f303re"
APP_BASE = 0x0800_A000


def client_of(s: Served) -> Client:
    return Client(resolve_settings(url=s.url, token=s.token("alice"), environ={}))


def run(s: Served, images: list, **kw) -> tuple[dict, bytes]:
    """Submit one job of ``images``, wait for it, return (job, log)."""
    with client_of(s) as client:
        job = client.submit(images, BOARD, kw.pop("limit", 2), **kw)
        final = client.wait(job["id"], timeout=60)
        return final, client.log(job["id"])


def test_bootloader_and_application_run_as_one_job(served: Served):
    job, log = run(served, [path("boot_split"), path("boot_app")])
    assert log == expected("boot_split+boot_app")
    assert (job["status"], job["stop_reason"], job["exit_code"]) == ("FINISHED", "exit", 0)
    assert [(i["name"], i["format"], i["size"], i["sha256"], i["address"])
            for i in job["images"]] == [
        (f"{n}.elf", "elf", path(n).stat().st_size, hashlib.sha256(image(n)).hexdigest(), None)
        for n in ("boot_split", "boot_app")]
    assert job["filename_executable"] == job["images"][0]["filename"]
    files = f"/apiv1/jobs/{job['id']}/executable"
    assert served.env.get(files).content == image("boot_split")
    assert served.env.get(files, params={"image": 2}).content == image("boot_app")
    assert served.env.get(files, params={"image": 3}).status_code == 404
    assert served.env.get(files, params={"image": 0}).status_code == 400


@pytest.mark.parametrize("boot, app", [("hex", "hex"), ("bin", "elf"), ("elf", "bin")])
def test_every_format_places_itself_or_is_placed(served: Served, boot: str, app: str):
    """A BIN goes at the flash start unless given an address (``app.bin@0x0800A000``)."""
    app_ref = (ImageRef(path("boot_app", "bin"), APP_BASE) if app == "bin"
               else path("boot_app", app))
    job, log = run(served, [path("boot_split", boot), app_ref])
    assert log == expected("boot_split+boot_app"), job
    if app == "bin":
        assert job["images"][1]["address"] == APP_BASE


def test_without_the_application_the_bootloader_reports_the_bad_checksum(served: Served):
    job, log = run(served, [path("boot_split")])
    assert log == expected("boot_split")
    assert b"bad checksum" in log and job["exit_code"] == 1


def test_a_corrupted_application_fails_the_checksum(served: Served):
    data = bytearray(image("boot_app", "bin"))
    data[0x300] ^= 0x01  # one bit of the application's code
    with client_of(served) as client:
        job = client.submit([path("boot_split"), ImageRef(served_file(served, data), APP_BASE)],
                            BOARD, 2)
        final = client.wait(job["id"], timeout=60)
        log = client.log(job["id"]).decode()
    assert final["exit_code"] == 2, final
    assert "boot: bad checksum: stored 0x" in log and "app:" not in log


def served_file(s: Served, data: bytes) -> str:
    return s.write(f"{uuid.uuid4().hex}.bin", bytes(data))


def test_the_v1_raw_body_is_one_image_as_before(served: Served):
    with client_of(served) as client:
        job = client.submit(path("boot_split"), BOARD, 2)
        assert job["images"] is None
        final = client.wait(job["id"], timeout=60)
        assert client.log(job["id"]) == expected("boot_split") and final["exit_code"] == 1


def test_junit_names_every_image(served: Served):
    job, _ = run(served, [path("boot_split"), path("boot_app")])
    with client_of(served) as client:
        suite = next(iter(junitparser.JUnitXml.fromstring(client.junit(job["id"]))))
    props = {p.name: p.value for p in suite.properties()}
    assert props["image.1.name"] == "boot_split.elf"
    assert props["image.2.name"] == "boot_app.elf"
    assert props["image.2.sha256"] == hashlib.sha256(image("boot_app")).hexdigest()
    assert props["image.2.size"] == str(len(image("boot_app")))
    assert props["image_sha256"] == hashlib.sha256(image("boot_split")).hexdigest()


# ---- refusals (falcon's test client on the same app: no job runs) -----------------------

def multipart(env: Env, parts: list[tuple[str, str, bytes]], user: str = "alice",
              **params) -> falcon.testing.Result:
    """PUT a multipart submit built by httpx (as the client sends it)."""
    request = httpx.Request("PUT", "http://x/", files=[
        (field, (name, data, "application/octet-stream")) for field, name, data in parts])
    body = request.read()
    return env.client.simulate_put(
        "/apiv1/jobs/submit", params={"board": BOARD, "duration_limit_seconds": 1, **params},
        body=body, headers={**env.headers[user],
                            "Content-Type": request.headers["Content-Type"]})


def test_overlapping_images_are_refused_naming_both(idle_env: Env):
    r = multipart(idle_env, [("image", "boot.elf", image("boot_split")),
                             ("image", "hello.elf", image("hello"))])
    assert r.status_code == 400, r.text
    text = r.json["description"]
    assert "'boot.elf' and 'hello.elf' overlap at 0x08000000-0x" in text
    # the application BIN placed over the bootloader's end
    app = image("boot_app", "bin")
    r = multipart(idle_env, [("image", "boot.elf", image("boot_split")),
                             ("image@0x08000100", "app.bin", app)])
    assert r.status_code == 400 and "'boot.elf' and 'app.bin' overlap at 0x08000100-" \
        in r.json["description"]
    assert idle_env.service.store.jobs.list(owner="alice") == []


@pytest.mark.parametrize("parts, status, fragment", [
    ([("image@0x0800A000", "app.elf", "boot_app.elf")], 400, "only a BIN takes an address"),
    ([("image@nowhere", "app.bin", "boot_app.bin")], 400, "not an address"),
    ([("firmware", "app.elf", "boot_app.elf")], 400, "is not an image"),
    ([("image", "boot.elf", "boot_split.elf"), ("image@0x30000000", "app.bin", "boot_app.bin")],
     400, "does not fit board"),
    ([("image", "empty.bin", "")], 400, "'empty.bin' is empty"),
    ([("image", "junk.elf", "truncated")], 415, "('junk.elf')"),
    ([("image", "junk.bin", "random.bin")], 415, "vector table"),
])
def test_bad_parts_are_refused_with_the_reason(idle_env: Env, parts, status, fragment):
    def content(name: str) -> bytes:
        if name in ("truncated", "random.bin"):
            bad = path("hello").parent.parent / "bad"
            return (bad / ("truncated.elf" if name == "truncated" else name)).read_bytes()
        stem, _, fmt = name.partition(".")
        return image(stem, fmt) if name else b""
    r = multipart(idle_env, [(f, n, content(c)) for f, n, c in parts])
    assert r.status_code == status, r.text
    assert fragment in r.json["description"]


def test_parts_and_sizes_are_bounded(make_env):
    env = make_env(start=False, limits_max_executable_bytes=64 * 1024)
    hello = image("hello")
    r = multipart(env, [("image", f"p{n}.elf", hello) for n in range(9)])
    assert r.status_code == 400 and "at most 8 file parts" in r.json["description"]
    r = multipart(env, [("image", "big.bin", b"\0" * (64 * 1024 + 1))])
    assert r.status_code == 413 and "'big.bin'" in r.json["description"]
    r = env.client.simulate_put(
        "/apiv1/jobs/submit", params={"board": BOARD}, body=b"x" * 100,
        headers={**env.headers["alice"], "Content-Type": "multipart/form-data"})
    assert r.status_code == 400  # no boundary
    limits = env.get("/apiv1/limits").json
    assert limits["max_images"] == 8 and limits["max_pins"] == 64


def test_client_refuses_more_images_than_the_server_takes(served: Served):
    with client_of(served) as client, pytest.raises(HwutError) as err:
        client.submit([path("hello")] * 9, BOARD, 1)
    assert "at most 8" in err.value.description




# ---- the CLI: '+' joins the images of one job; several arguments stay several jobs -------

def test_cli_plus_makes_one_job_and_arguments_stay_jobs(served: Served, tmp_path):
    pair = f"{path('boot_split')}+{path('boot_app', 'bin')}@0x0800A000"
    r = served.run("submit", "-b", BOARD, "-l", "2", "--wait", pair)
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == expected("boot_split+boot_app")
    junit_file = tmp_path / "two.xml"
    r = served.run("submit", "-b", BOARD, "-l", "2", "--junit", str(junit_file),
                   pair, str(path("boot_split")))
    assert r.exit_code == 1, r.output  # the lone bootloader exits 1: the worse code wins
    suites = list(junitparser.JUnitXml.fromfile(str(junit_file)))
    assert len(suites) == 2
    names = [{p.name: p.value for p in s.properties()}.get("image.2.name") for s in suites]
    assert names == ["boot_app.bin", None]


def test_cli_names_a_missing_image_before_uploading(served: Served):
    r = served.run("submit", "-b", BOARD, f"{path('boot_split')}+nowhere/app.elf")
    assert r.exit_code == 64 and "no such file: nowhere/app.elf" in r.output
    r = served.run("submit", "-b", BOARD, f"{path('boot_split')}+")
    assert r.exit_code == 64 and "an empty image name" in r.output
    r = served.run("submit", "-b", BOARD, f"{path('boot_app', 'bin')}@0xZZ+{path('boot_split')}")
    assert r.exit_code == 64 and "not an address" in r.output


def test_cli_job_file_entry_of_several_images(served: Served):
    job_file = served.write("pair.toml", f'''
board = "{BOARD}"
limit = 2
images = [["{path("boot_split")}", "{path("boot_app", "bin")}@0x0800A000"]]
'''.encode())
    r = served.run("submit", "--wait", "-f", job_file)
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == expected("boot_split+boot_app")


def test_image_names_parse_as_documented(tmp_path):
    from hwut.images import ImageRef, parse_job
    (tmp_path / "c++.elf").write_bytes(b"x")
    (tmp_path / "a@b.bin").write_bytes(b"x")
    assert parse_job("c++.elf", tmp_path) == (ImageRef(tmp_path / "c++.elf"),)
    assert parse_job("a@b.bin", tmp_path) == (ImageRef(tmp_path / "a@b.bin"),)
    assert parse_job("boot.elf+app.bin@0x0800a000", tmp_path) == (
        ImageRef(tmp_path / "boot.elf"), ImageRef(tmp_path / "app.bin", 0x0800_A000))
    assert str(ImageRef("app.bin", 0x0800_A000)) == "app.bin@0x0800A000"
    for bad, why in (("a+", "empty image name"), ("+".join("x" * 9), "at most 8"),
                     ("app.bin@0x1FFFFFFFF", "outside the 32-bit"), ("app.bin@", "not an address")):
        with pytest.raises(ValueError, match=why):
            parse_job(bad, tmp_path)


def test_job_file_entries_are_checked(tmp_path):
    from hwut.jobfile import JobFileError, parse
    (tmp_path / "boot.elf").write_bytes(b"x")
    job = parse({"images": [["boot.elf", "boot.elf@0x0800A000"], "boot.elf+boot.elf"],
                 "pins": ["PA0@0:1"]}, "job.toml", tmp_path)
    assert [len(j) for j in job.images] == [2, 2] and job.pins == ("PA0@0:1",)
    for data, why in (({"images": [[]]}, "lists of file names"),
                      ({"images": [["boot.elf", 3]]}, "lists of file names"),
                      ({"images": [["boot.elf", "gone.elf"]]}, "gone.elf does not exist"),
                      ({"image": "boot.elf", "pins": "PA0@0:1"}, "pins must be a list"),
                      ({"image": "boot.elf", "pins": [1]}, "pins is a list of strings")):
        with pytest.raises(JobFileError, match=why):
            parse(data, "job.toml", tmp_path)
