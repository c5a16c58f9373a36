"""IPTC IIM inside Photoshop's image resources (JPEG APP13 "Photoshop 3.0"): the one walker that
reads and rewrites its copyright notice (dataset 2:116, CopyrightNotice).

Cameras, Photoshop, Lightroom and ExifTool keep a photo's notice there beside EXIF's Copyright
and XMP's dc:rights; the MWG guidelines (2.0, "Copyright") ask a writer to keep the three in
sync, and readers that reconcile them (ExifTool's MWG module, Lightroom) may show the IIM one.
The resource block is walked within bounds (MalformedMetadata otherwise); a notice is replaced
where it is, every other resource and dataset keeping its bytes. Resource 0x0425 holds the MD5
of the IIM block: Photoshop and ExifTool take a digest that no longer matches as "the IIM was
changed by a tool that does not know XMP" and prefer the IIM over the XMP, so a digest that
matched before is made to match the new block, and one that did not is left not matching.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import MalformedMetadata

IPTC_NAA = 0x0404
DIGEST = 0x0425
_SIGNATURES = (b"8BIM", b"PHUT", b"AgHg", b"DCSR", b"MeSa")  # Photoshop's and older Adobe tools'
NOTICE_MARK = b"\x1c\x02\x74"  # the header of dataset 2:116: a block without it holds no notice
_UTF8 = b"\x1b%G"  # dataset 1:90, CodedCharacterSet: ISO 2022 escape for UTF-8
_MAX_RESOURCES = 10_000
_MAX_DATASETS = 100_000


class Resource(NamedTuple):
    """One image resource: its id and where its data lies in the block (padding excluded)."""

    id: int
    data_start: int
    data_end: int


class Dataset(NamedTuple):
    record: int
    number: int
    start: int  # of its 0x1C tag marker
    data_start: int
    end: int


def resources(irb: bytes) -> list[Resource]:
    """The resources of a Photoshop resource block (an APP13 payload after "Photoshop 3.0\\0")."""
    found: list[Resource] = []
    pos, n = 0, len(irb)
    while pos < n:
        if len(found) >= _MAX_RESOURCES:
            raise MalformedMetadata(f"Photoshop resources: more than {_MAX_RESOURCES}")
        if irb[pos : pos + 4] not in _SIGNATURES:
            if not irb[pos:].strip(b"\x00"):
                break  # padding after the last resource
            raise MalformedMetadata(f"Photoshop resources: no resource signature at offset {pos}")
        if pos + 7 > n:
            raise MalformedMetadata(f"Photoshop resources: truncated resource header at offset {pos}")
        rid = int.from_bytes(irb[pos + 4 : pos + 6], "big")
        name = 1 + irb[pos + 6]
        size_at = pos + 6 + name + (name & 1)  # the Pascal name is padded to an even length
        if size_at + 4 > n:
            raise MalformedMetadata(f"Photoshop resources: resource 0x{rid:04X} at offset {pos} is truncated")
        size = int.from_bytes(irb[size_at : size_at + 4], "big")
        start = size_at + 4
        if start + size > n:
            raise MalformedMetadata(f"Photoshop resources: resource 0x{rid:04X} claims {size} bytes past the end")
        found.append(Resource(rid, start, start + size))
        pos = start + size + (size & 1)
    return found


def datasets(block: bytes) -> list[Dataset]:
    """The datasets of an IIM block (resource 0x0404's data)."""
    found: list[Dataset] = []
    pos, n = 0, len(block)
    while pos < n:
        if len(found) >= _MAX_DATASETS:
            raise MalformedMetadata(f"IPTC IIM: more than {_MAX_DATASETS} datasets")
        if block[pos] != 0x1C:
            if not block[pos:].strip(b"\x00"):
                break  # padding (Photoshop pads the block to an even length)
            raise MalformedMetadata(f"IPTC IIM: no dataset marker at offset {pos}")
        if pos + 5 > n:
            raise MalformedMetadata(f"IPTC IIM: truncated dataset header at offset {pos}")
        record, number = block[pos + 1], block[pos + 2]
        length = int.from_bytes(block[pos + 3 : pos + 5], "big")
        start = pos + 5
        if length & 0x8000:  # extended dataset: the low bits say how many bytes hold the length
            width = length & 0x7FFF
            if width > 4 or start + width > n:
                raise MalformedMetadata(f"IPTC IIM: dataset {record}:{number} has an unreadable extended length")
            length = int.from_bytes(block[start : start + width], "big")
            start += width
        if start + length > n:
            raise MalformedMetadata(f"IPTC IIM: dataset {record}:{number} claims {length} bytes past the end")
        found.append(Dataset(record, number, pos, start, start + length))
        pos = start + length
    return found


def _text(value: bytes, utf8: bool) -> str:
    # Without 1:90 saying UTF-8, IIM text is read as Latin-1, as ExifTool reads it by default.
    return value.decode("utf-8", "replace") if utf8 else value.decode("latin-1")


def _block(irb: bytes) -> tuple[Resource | None, list[Dataset], bool]:
    found = [r for r in resources(irb) if r.id == IPTC_NAA]
    if len(found) > 1:
        raise MalformedMetadata("Photoshop resources hold the IPTC block (0x0404) twice")
    if not found:
        return None, [], False
    block = irb[found[0].data_start : found[0].data_end]
    sets = datasets(block)
    utf8 = any((d.record, d.number) == (1, 90) and block[d.data_start : d.end] == _UTF8 for d in sets)
    return found[0], sets, utf8


def notices(irb: bytes) -> list[str]:
    """The copyright notices (2:116) of a Photoshop resource block; MalformedMetadata when broken."""
    resource, sets, utf8 = _block(irb)
    if resource is None:
        return []
    block = irb[resource.data_start : resource.data_end]
    return [_text(block[d.data_start : d.end], utf8) for d in sets if (d.record, d.number) == (2, 116)]


def with_notice(irb: bytes, notice: str) -> bytes | None:
    """The resource block with every copyright notice (2:116) saying ``notice``, the digest
    (0x0425) kept true if it was; None when it has none to replace. MalformedMetadata when the
    block is broken, or ``notice`` cannot be written in the block's character set (Latin-1
    without 1:90; rightsmeta does not add 1:90, which would change how every other text reads)."""
    resource, sets, utf8 = _block(irb)
    if resource is None:
        return None
    block = irb[resource.data_start : resource.data_end]
    targets = [d for d in sets if (d.record, d.number) == (2, 116)]
    if not targets:
        return None
    try:
        value = notice.encode("utf-8" if utf8 else "latin-1")
    except UnicodeEncodeError:
        raise MalformedMetadata("its IPTC IIM says no character set (read as Latin-1), which cannot hold this notice") from None
    if len(value) > 0x7FFF:
        raise MalformedMetadata("the notice is too long for an IIM dataset")
    pieces, pos = [], 0
    for d in targets:
        pieces += [block[pos : d.start], bytes((0x1C, 2, 116)), len(value).to_bytes(2, "big"), value]
        pos = d.end
    new_block = b"".join(pieces) + block[pos:]
    out = bytearray(irb[: resource.data_start - 4])
    out += len(new_block).to_bytes(4, "big") + new_block
    if len(new_block) & 1:
        out += b"\x00"
    after = resource.data_end + ((resource.data_end - resource.data_start) & 1)
    out += irb[after:]
    import hashlib  # here: a start-up that tags no such notice does not load it (test_tag_fastpath)

    digest = [r for r in resources(bytes(out)) if r.id == DIGEST and r.data_end - r.data_start == 16]
    old_md5 = hashlib.md5(block, usedforsecurity=False).digest()
    for r in digest:
        if out[r.data_start : r.data_end] == old_md5:  # in sync before: kept in sync
            out[r.data_start : r.data_end] = hashlib.md5(new_block, usedforsecurity=False).digest()
    return bytes(out)
