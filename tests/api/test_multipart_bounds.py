"""The multipart submit under hostile input (Hypothesis): whatever the parts (how many,
their field names, file names, sizes, contents) and whatever the body's bytes, the
answer is 201 or a 4xx with the reason, never a 5xx; the first malformed part decides
(a field that is no image: 400, a part over the size limit: 413), more than MAX_IMAGES
parts is a 400, and a job is stored only for well-formed, fitting images, with the
client's names cleaned and bounded."""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import pytest
from elftools.elf.elffile import ELFFile
from fixture_firmware import image
from hwut_testenv import Env
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hwut.resources.jobs import MAX_IMAGE_NAME, MAX_IMAGES
from hwut.server import BODY_SLACK_BYTES

LIMIT = 16 * 1024
BOUNDARY = "hwut-test-boundary-7c1d"
CONTENTS = {
    "boot": image("boot_split"),
    "app": image("boot_app"),
    "junk": b"\x13\x37" * 64,
    "empty": b"",
    "big": b"\0" * (LIMIT + 1),
}
FIELDS = ("image", "image", "image@0x0800A000", "image@zz", "firmware", "")
FLASH = 0x08000000


def _spans(elf: bytes) -> list[tuple[int, int]]:
    """Where an ELF's loadable bytes go (read with pyelftools, not with HWUT's loader)."""
    f = ELFFile(io.BytesIO(elf))
    return [(seg["p_paddr"], seg["p_paddr"] + seg["p_filesz"]) for seg in f.iter_segments()
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]]


ELF_SPANS = {name: _spans(CONTENTS[name]) for name in ("boot", "app")}
NAME_CHARS = st.characters(blacklist_characters='"\r\n', blacklist_categories=("Cs",))

part = st.tuples(st.sampled_from(FIELDS), st.text(NAME_CHARS, max_size=300),
                 st.sampled_from(sorted(CONTENTS)))


def body_of(parts: list[tuple[str, str, str]]) -> bytes:
    out = bytearray()
    for field, name, content in parts:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode()
        out += CONTENTS[content] + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def put(env: Env, body: bytes):
    return env.client.simulate_put(
        "/apiv1/jobs/submit", params={"board": "nucleo-f303re", "duration_limit_seconds": 1},
        body=body, headers={**env.headers["alice"],
                            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


@pytest.fixture
def bounded_env(make_env: Callable[..., Env]) -> Env:
    return make_env(start=False, limits_max_executable_bytes=LIMIT, quota_max_waiting_jobs=0)


def first_problem(parts: list[tuple[str, str, str]]) -> int | None:
    """The status the framing decides, before any image is parsed; None: none."""
    if len(body_of(parts)) > LIMIT + BODY_SLACK_BYTES:  # one upload's bound for them all
        return 413
    for field, _, content in parts[:MAX_IMAGES]:
        if field != "image" and not field.startswith("image@"):
            return 400
        if field == "image@zz":
            return 400
        if len(CONTENTS[content]) > LIMIT:
            return 413
    if not parts or len(parts) > MAX_IMAGES:
        return 400
    return None


def boots(parts: list[tuple[str, str, str]]) -> bool:
    """Whether the images, well framed, make a job: each placed (an ELF where it says,
    a BIN at its part's address or the start of flash; an address for an ELF is
    refused), none overlapping another, none empty, and the lowest one starting with
    a vector table (``junk``'s first word is no stack pointer in RAM)."""
    spans = []
    for field, _, content in parts:
        if content in ELF_SPANS:
            if field != "image":
                return False
            spans += [(lo, hi, content) for lo, hi in ELF_SPANS[content]]
        elif content == "junk":
            at = FLASH if field == "image" else 0x0800A000
            spans.append((at, at + len(CONTENTS[content]), content))
        else:
            return False
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        return False
    return spans[0][2] != "junk"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(part, max_size=MAX_IMAGES + 3))
@example([("image", "boot\x01/../b.elf", "boot"), ("image", "x" * 300, "app")])
@example([("image", "a", "app")] + [("image", "b", "junk")] * MAX_IMAGES)
@example([("image", "a", "boot"), ("image", "b", "big")])
# a BIN beside the bootloader, where its application would go: a job (found by Hypothesis)
@example([("image", "a", "boot"), ("image@0x0800A000", "b", "junk")])
@example([("image", "a", "app"), ("image", "b", "junk")])
def test_parts_are_bounded_and_every_answer_is_a_reason(bounded_env: Env, parts):
    before = len(bounded_env.service.store.jobs.list(owner="alice", limit=1000))
    r = put(bounded_env, body_of(parts))
    assert r.status_code in (201, 400, 413, 415), r.text
    assert r.status_code == 201 or r.json["description"]
    decided = first_problem(parts)
    if decided is not None:
        assert r.status_code == decided, (parts, r.text)
    contents = [c for _, _, c in parts]
    fits = decided is None and boots(parts)
    assert (r.status_code == 201) == fits, (parts, r.text)
    stored = len(bounded_env.service.store.jobs.list(owner="alice", limit=1000))
    assert stored == before + (r.status_code == 201)
    if r.status_code == 201:
        images = r.json["images"]
        assert [(i["size"], i["sha256"]) for i in images] == [
            (len(CONTENTS[c]), hashlib.sha256(CONTENTS[c]).hexdigest()) for c in contents]
        for record in images:
            assert 0 < len(record["name"]) <= MAX_IMAGE_NAME
            assert not any(ord(ch) < 32 for ch in record["name"])
            assert "/" not in record["name"] and "\\" not in record["name"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4096))
def test_any_body_bytes_get_a_4xx_not_a_crash(bounded_env: Env, junk: bytes):
    r = put(bounded_env, junk)
    assert r.status_code in (400, 411, 413, 415), r.text
    assert r.json["description"]
