"""XMP in images, end to end: tag, read back, interoperate with ExifTool, never lose data."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from samples import WRITABLE, exiftool_json, exiftool_write, image_bytes, pixels, write_image

import rightsmeta
from rightsmeta import Assertion, Permission, Purpose, State
from rightsmeta.errors import MalformedMetadata, UnsupportedFormat

DENY_AI = Assertion.build(deny=["ai"], holder="Ada Lovelace", copyright="(c) 2026 Ada Lovelace")

states = st.sampled_from(list(State))
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=30).filter(str.strip)


@st.composite
def assertions(draw: st.DrawFn) -> Assertion:
    perms = {}
    for purpose in Purpose:
        state = draw(states)
        info = draw(texts).strip() if state is State.CONSTRAINED and draw(st.booleans()) else None
        perms[purpose] = Permission(state, info)
    assume_something = any(p.state is not State.UNSPECIFIED for p in perms.values())
    if not assume_something:
        perms[Purpose.SEARCH] = Permission(State.ALLOWED)
    return Assertion(permissions=perms)


_BASE = {fmt: image_bytes(fmt) for fmt in WRITABLE}


@pytest.mark.parametrize("fmt", WRITABLE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(assertion=assertions())
def test_round_trip_every_combination(fmt: str, assertion: Assertion) -> None:
    tagged = rightsmeta.tag_bytes(_BASE[fmt], assertion)
    report = rightsmeta.read(tagged)
    assert report.errors == []
    assert report.conflicts == ()
    assert report.permissions == dict(assertion.permissions)


@pytest.mark.parametrize("fmt", WRITABLE)
def test_tag_path_then_read_json(tmp_path: Path, fmt: str) -> None:
    path = write_image(tmp_path, fmt)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "tagged", result.reason
    data = rightsmeta.read(path).to_json()
    assert data["format"] == fmt
    assert data["permissions"] == {
        "data-mining": "unspecified",
        "ai-training": "notAllowed",
        "genai-training": "notAllowed",
        "ai-inference": "notAllowed",
        "search": "unspecified",
    }
    assert data["rights"]["copyright"] == "(c) 2026 Ada Lovelace"
    assert data["rights"]["holder"]["name"] == "Ada Lovelace"
    assert [c["name"] for c in data["carriers"]] == ["xmp"]


def test_read_accepts_bytes_and_streams(tmp_path: Path) -> None:
    tagged = rightsmeta.tag_bytes(image_bytes("png"), DENY_AI)
    from_bytes = rightsmeta.read(tagged)
    from_stream = rightsmeta.read(io.BytesIO(tagged))
    path = tmp_path / "x.png"
    path.write_bytes(tagged)
    with open(path, "rb") as fh:
        from_file_object = rightsmeta.read(fh)
    assert from_bytes.permissions == from_stream.permissions == from_file_object.permissions
    assert from_bytes.permissions[Purpose.AI_TRAINING].state is State.NOT_ALLOWED
    assert from_file_object.path == str(path)
    assert rightsmeta.tag_bytes(io.BytesIO(image_bytes("png")), DENY_AI)[:8] == b"\x89PNG\r\n\x1a\n"


# --- interoperability with ExifTool -----------------------------------------------------


@pytest.mark.parametrize("fmt", WRITABLE)
def test_exiftool_sees_what_we_wrote(tmp_path: Path, exiftool: str, fmt: str) -> None:
    path = write_image(tmp_path, fmt)
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    printed = exiftool_json(exiftool, path)
    assert printed["XMP-plus:DataMining"] == "Prohibited for AI/ML training"
    assert str(printed["XMP-tdm:Reservation"]) == "1"
    assert "inference" in printed["XMP-plus:OtherConstraints"]
    assert printed["XMP-dc:Rights"] == "(c) 2026 Ada Lovelace"
    raw = exiftool_json(exiftool, path, "-n")
    assert raw["XMP-plus:DataMining"] == "DMI-PROHIBITED-AIMLTRAINING"


def test_projection_edited_by_exiftool_is_a_conflict(tmp_path: Path, exiftool: str) -> None:
    path = write_image(tmp_path, "jpeg")
    rightsmeta.tag(path, DENY_AI)
    exiftool_write(exiftool, path, "-XMP-plus:DataMining#=DMI-ALLOWED")
    report = rightsmeta.read(path)
    assert report.errors == []
    assert any("iptc-plus" in c and "differs" in c for c in report.conflicts), report.conflicts
    perms = report.permissions
    # Once the file disagrees, every carrier counts by precedence: notAllowed beats allowed.
    assert perms[Purpose.AI_TRAINING].state is State.NOT_ALLOWED
    assert perms[Purpose.AI_INFERENCE].state is State.NOT_ALLOWED
    assert perms[Purpose.SEARCH].state is State.ALLOWED
    assert perms[Purpose.DATA_MINING].state is State.NOT_ALLOWED  # TDMRep reservation 1 beats the edit


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("DMI-PROHIBITED-AIMLTRAINING", {Purpose.AI_TRAINING: State.NOT_ALLOWED, Purpose.GENAI_TRAINING: State.NOT_ALLOWED}),
        ("DMI-PROHIBITED", {p: State.NOT_ALLOWED for p in Purpose}),
        ("DMI-ALLOWED", {p: State.ALLOWED for p in Purpose}),
    ],
)
@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif"])
def test_files_tagged_by_exiftool_alone(tmp_path: Path, exiftool: str, fmt: str, code: str, expected: dict[Purpose, State]) -> None:
    path = write_image(tmp_path, fmt)
    exiftool_write(exiftool, path, f"-XMP-plus:DataMining#={code}")
    report = rightsmeta.read(path)
    assert report.errors == [] and report.conflicts == ()
    for purpose in Purpose:
        assert report.permissions[purpose].state is expected.get(purpose, State.UNSPECIFIED)


def test_exiftool_tdmrep_and_learning_opt_out(tmp_path: Path, exiftool: str) -> None:
    path = write_image(tmp_path, "jpeg")
    # Exif 3.1: one pair, usage 2 (generative training), indicator 0 (opt-out).
    exiftool_write(exiftool, path, "-XMP-tdm:Reservation=1", "-XMP-tdm:Policy=https://example.com/tdm.json",
                   "-ExifIFD:LearningOptOutIn=Generative AI/ML Training; Opt-out")
    report = rightsmeta.read(path)
    assert report.errors == [], report.errors
    assert {c.name for c in report.carriers} == {"xmp", "exif"}
    assert report.permissions[Purpose.DATA_MINING] == Permission(State.CONSTRAINED, "https://example.com/tdm.json")
    assert report.permissions[Purpose.GENAI_TRAINING].state is State.NOT_ALLOWED
    # The umbrella: reserved mining also reserves the unspecified AI purposes.
    assert report.decision.effective[Purpose.AI_INFERENCE].state is State.CONSTRAINED
    assert not report.may_use(Purpose.AI_TRAINING)
    assert report.may_use(Purpose.SEARCH)


# --- never lose a user's data -----------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITABLE)
def test_pixels_exif_icc_and_other_xmp_kept(tmp_path: Path, exiftool: str, fmt: str) -> None:
    path = write_image(tmp_path, fmt, exif=True, icc=True)
    exiftool_write(exiftool, path, "-XMP-dc:Creator=Someone Else", "-XMP-photoshop:Credit=Agency")
    if fmt == "jpeg":
        exiftool_write(exiftool, path, "-IPTC:Keywords=kept")
    before = path.read_bytes()
    with Image.open(path) as img:
        icc_before = img.info.get("icc_profile")
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert pixels(path) == pixels(before)
    with Image.open(path) as img:
        assert img.info.get("icc_profile") == icc_before and icc_before
    printed = exiftool_json(exiftool, path)
    assert printed.get("IFD0:Make") == "rightsmeta test camera"
    assert printed["XMP-dc:Creator"] == "Someone Else"
    assert printed["XMP-photoshop:Credit"] == "Agency"
    if fmt == "jpeg":
        assert printed["IPTC:Keywords"] == "kept"


@pytest.mark.parametrize("fmt", WRITABLE)
def test_tagging_again_replaces_our_values(tmp_path: Path, exiftool: str, fmt: str) -> None:
    path = write_image(tmp_path, fmt)
    first = Assertion.build(deny=["ai", "data-mining"], constrain=[("search", "https://example.com/terms")], policy="https://example.com/p")
    rightsmeta.tag(path, first)
    rightsmeta.tag(path, DENY_AI)
    report = rightsmeta.read(path)
    assert report.permissions == dict(DENY_AI.permissions)
    values = report.carriers[0].values
    assert "rightsmeta:SearchConstraint" not in values
    assert "tdm:policy" not in values
    printed = exiftool_json(exiftool, path, "-a", "-XMP:all")
    assert sum(1 for k in printed if k.endswith(":DataMining")) == 2  # ours and PLUS, once each
    assert printed["XMP-plus:DataMining"] == "Prohibited for AI/ML training"


def test_someone_elses_usage_terms_are_kept(tmp_path: Path, exiftool: str) -> None:
    path = write_image(tmp_path, "png")
    exiftool_write(exiftool, path, "-XMP-xmpRights:UsageTerms=Editorial use only")
    rightsmeta.tag(path, DENY_AI)
    assert exiftool_json(exiftool, path)["XMP-xmpRights:UsageTerms"] == "Editorial use only"


def test_failure_before_rename_leaves_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_image(tmp_path, "jpeg")
    os.chmod(path, 0o640)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "simulated crash between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed" and "simulated crash" in (result.reason or "")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left
    monkeypatch.undo()
    assert rightsmeta.tag(path, DENY_AI).status == "tagged"
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    path = write_image(tmp_path, "webp")
    before = path.read_bytes()
    assert rightsmeta.tag(path, DENY_AI, dry_run=True).status == "would-tag"
    assert path.read_bytes() == before


# --- formats XMP cannot be written to ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["gif", "avif"])
def test_read_only_formats_say_why(tmp_path: Path, fmt: str) -> None:
    if fmt == "avif":
        from PIL import features

        if not features.check("avif"):
            pytest.skip("this Pillow cannot write AVIF")
    path = write_image(tmp_path, fmt)
    before = path.read_bytes()
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed"
    assert "cannot be written" in (result.reason or "") and "C2PA" in (result.reason or "")
    assert path.read_bytes() == before
    with pytest.raises(UnsupportedFormat):
        rightsmeta.tag_bytes(before, DENY_AI)


# --- hostile input ----------------------------------------------------------------------


def _jpeg_with_xmp(packet: bytes) -> bytes:
    jpeg = image_bytes("jpeg")
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    segment = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    return jpeg[:2] + segment + jpeg[2:]


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" plus:DataMining="&lol9;"/></rdf:RDF></x:xmpmeta>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY ext SYSTEM "http://203.0.113.1/secret">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"><plus:DataMining>&ext;</plus:DataMining>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize("packet", [BOMB, EXTERNAL], ids=["entity-bomb", "external-entity"])
def test_hostile_xmp_is_refused_quickly(tmp_path: Path, packet: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    path = tmp_path / "hostile.jpg"
    path.write_bytes(_jpeg_with_xmp(packet))
    before = path.read_bytes()
    start = time.perf_counter()
    report = rightsmeta.read(path)
    result = rightsmeta.tag(path, DENY_AI)
    assert time.perf_counter() - start < 1.0
    assert report.errors and "malformed XMP" in report.errors[0] and "DTD" in report.errors[0]
    assert not report.may_use(Purpose.SEARCH)  # fail closed
    assert result.status == "failed" and "malformed" in (result.reason or "")
    assert path.read_bytes() == before
    with pytest.raises(MalformedMetadata):
        rightsmeta.tag_bytes(before, DENY_AI)


@pytest.mark.parametrize("fmt", WRITABLE)
def test_truncated_image_gets_a_clear_error(tmp_path: Path, fmt: str) -> None:
    whole = rightsmeta.tag_bytes(image_bytes(fmt, size=(64, 64)), DENY_AI)
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    before = path.read_bytes()
    report = rightsmeta.read(path)
    assert report.errors and "truncated" in report.errors[0].lower(), report.errors
    result = rightsmeta.tag(path, DENY_AI)
    assert result.status == "failed"
    assert path.read_bytes() == before


def test_empty_and_unknown_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert rightsmeta.read(empty).errors == ["empty file (0 bytes)"]
    assert "not a format" in rightsmeta.read(text).errors[0]
    assert rightsmeta.tag(text, DENY_AI).status == "skipped"
    assert rightsmeta.tag(empty, DENY_AI).status == "failed"
