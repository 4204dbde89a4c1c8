"""Image ingest over real files of every format, and every kind of bad file."""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mleval.core.errors import ImageFileError, ValidationError
from mleval.images.probe import probe_image
from tests.unit.conftest import image_bytes

GOOD = [
    ("photo.jpg", "JPEG", "RGB", {}),
    ("grey.jpg", "JPEG", "L", {}),
    ("plain.png", "PNG", "RGB", {}),
    ("alpha.png", "PNG", "RGBA", {}),
    ("grey.png", "PNG", "L", {}),
    ("deep.png", "PNG", "I;16", {}),
    ("scan.tif", "TIFF", "RGB", {"compression": "tiff_lzw"}),
    ("deep.tif", "TIFF", "I;16", {}),
    ("pic.bmp", "BMP", "RGB", {}),
    ("pic.webp", "WEBP", "RGB", {}),
    ("alpha.webp", "WEBP", "RGBA", {"lossless": True}),
    ("anim.gif", "GIF", "L", {}),
]


# Whole files in memory and seekable streams must get the same verdict.
AS_GIVEN = {"bytes": lambda data: data, "stream": io.BytesIO}


@pytest.mark.parametrize("given", list(AS_GIVEN))
@pytest.mark.parametrize(("name", "fmt", "mode", "options"), GOOD, ids=[g[0] for g in GOOD])
def test_every_supported_format_is_probed(name, fmt, mode, options, given):
    data = image_bytes(fmt, mode=mode, size=(70, 30), **options)
    info = probe_image(AS_GIVEN[given](data))
    assert (info.format.value, info.width, info.height, info.file_size) == (fmt, 70, 30, len(data))


@pytest.mark.parametrize("given", list(AS_GIVEN))
@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "WEBP"])
def test_a_quarter_turn_exif_orientation_gives_the_upright_size(fmt, given):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated a quarter turn
    info = probe_image(AS_GIVEN[given](image_bytes(fmt, size=(70, 30), exif=exif.tobytes())))
    assert (info.width, info.height, info.exif_orientation) == (30, 70, 6)


def _webp(mode: str, size: tuple[int, int], frames: int = 1, **options) -> bytes:
    rng = np.random.default_rng(len(mode) + frames)
    images = [Image.fromarray(rng.integers(0, 255, (size[1], size[0], len(mode)), np.uint8), mode)
              for _ in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "WEBP", save_all=frames > 1, append_images=images[1:], **options)
    return buffer.getvalue()


_EXIF_ROTATED = Image.Exif()
_EXIF_ROTATED[0x0112] = 8
WEBPS = {  # lossy (VP8), lossless (VP8L), extended (VP8X): still with alpha or EXIF, animated
    "lossy": _webp("RGB", (70, 30)),
    "lossless": _webp("RGB", (70, 30), lossless=True),
    "lossless alpha": _webp("RGBA", (33, 17), lossless=True),
    "lossy alpha": _webp("RGBA", (33, 17)),
    "exif": _webp("RGB", (70, 30), exif=_EXIF_ROTATED.tobytes()),
    "animated": _webp("RGB", (40, 24), frames=3),
    "animated alpha": _webp("RGBA", (40, 24), frames=2, lossless=True),
}


@pytest.mark.parametrize("kind", list(WEBPS))
def test_webp_facts_match_pils_own_reading(kind):
    data = WEBPS[kind]
    with Image.open(io.BytesIO(data)) as image:  # PIL's reader: libwebp, through its decoder
        orientation = image.getexif().get(0x0112, 1)
        size = image.size[::-1] if orientation in (5, 6, 7, 8) else image.size
        expected = (*size, image.mode, getattr(image, "n_frames", 1), orientation)
    info = probe_image(io.BytesIO(data))
    assert (info.width, info.height, info.mode, info.pages, info.exif_orientation) == expected


@pytest.mark.parametrize("damage", [
    lambda data: data[:12] + b"VP9 " + data[16:],  # an unknown first chunk
    lambda data: data[:23] + b"\x00\x00\x00" + data[26:],  # no VP8 start code
])
def test_a_damaged_webp_header_is_refused_with_a_reason(damage):
    with pytest.raises(ImageFileError, match="starts like a WEBP image but its header is damaged"):
        probe_image(io.BytesIO(damage(WEBPS["lossy"])))


def test_multipage_tiff_records_its_page_count(tmp_path):
    pages = [Image.fromarray(np.full((20, 30), v, np.uint8)) for v in (10, 120, 250)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert probe_image(path).pages == 3


def _truncate(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


BAD = [
    ("empty.png", b"", "empty"),
    ("notes.txt", b"just some text, not pixels\n" * 20, "not an image"),
    ("fake.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40, "damaged"),
    ("cut.jpg", _truncate(image_bytes("JPEG", size=(200, 200))), "truncated"),
    ("cut.png", _truncate(image_bytes("PNG", size=(200, 200))), "truncated"),
    ("cut.gif", _truncate(image_bytes("GIF", mode="L", size=(200, 200))), "truncated"),
    ("cut.webp", _truncate(image_bytes("WEBP", size=(200, 200))), "truncated"),
    ("cut.bmp", _truncate(image_bytes("BMP", size=(200, 200))), "truncated"),
    ("cut.tif", _truncate(image_bytes("TIFF", size=(200, 200))), "truncated"),
    ("icon.ico", image_bytes("ICO", size=(32, 32)), "not supported"),
]


@pytest.mark.parametrize("given", list(AS_GIVEN))
@pytest.mark.parametrize(("name", "data", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_are_refused_with_a_reason(name, data, reason, given):
    with pytest.raises(ImageFileError, match=reason):
        probe_image(AS_GIVEN[given](data))


def _png_without_its_last_data_chunks() -> bytes:
    """A PNG of several IDAT chunks cut at a chunk boundary, IEND put back: every chunk's CRC is right."""
    data = image_bytes("PNG", size=(400, 400))
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        chunks.append(data[offset:offset + 12 + length])
        offset += 12 + length
    idats = [c for c in chunks if c[4:8] == b"IDAT"]
    assert len(idats) > 1, "the test image needs several IDAT chunks"
    kept = [c for c in chunks if c not in idats[len(idats) // 2:]]
    return data[:8] + b"".join(kept)


CUT_WITH_THE_END_PUT_BACK = {  # each one passed the old end-marker check
    "jpeg cut in half, FF D9 appended": (lambda d: d[: len(d) // 2] + b"\xff\xd9")(
        image_bytes("JPEG", size=(300, 200))),
    "png missing data chunks, IEND kept": _png_without_its_last_data_chunks(),
    "gif cut, trailer appended": (lambda d: d[: len(d) * 2 // 3] + b"\x3b")(
        image_bytes("GIF", mode="L", size=(200, 200))),
}


@pytest.mark.parametrize("given", list(AS_GIVEN))
@pytest.mark.parametrize("case", list(CUT_WITH_THE_END_PUT_BACK))
def test_a_file_cut_short_is_refused_even_when_its_end_marker_is_put_back(case, given):
    with pytest.raises(ImageFileError, match="truncated or damaged"):
        probe_image(AS_GIVEN[given](CUT_WITH_THE_END_PUT_BACK[case]))


def test_a_jpeg_with_a_recoverable_oddity_is_still_taken_in():
    # Stray bytes before the end marker: libjpeg warns ("extraneous bytes"), every pixel decodes.
    data = image_bytes("JPEG", size=(70, 30))
    info = probe_image(data[:-2] + b"\x00\x00\xff\xd9")
    assert (info.format.value, info.width, info.height) == ("JPEG", 70, 30)


def test_cmyk_and_progressive_jpegs_are_decoded_to_check_them():
    cmyk = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 70, 4), np.uint8), "CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG")
    assert probe_image(buffer.getvalue()).mode == "CMYK"
    assert probe_image(image_bytes("JPEG", size=(70, 30), progressive=True)).width == 70


@pytest.mark.parametrize("given", list(AS_GIVEN))
def test_decompression_bomb_is_refused_without_decoding(given):
    def claiming(side: int) -> bytes:  # a 1x1 PNG whose header is rewritten to claim side x side pixels
        data = bytearray(image_bytes("PNG", size=(1, 1)))
        data[16:24] = side.to_bytes(4, "big") * 2
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the IHDR chunk valid
        return AS_GIVEN[given](bytes(data))

    with pytest.raises(ImageFileError, match="decompression bomb: .*PIL.Image.MAX_IMAGE_PIXELS"):
        probe_image(claiming(30_000), max_pixels=10**9)  # within max_pixels, beyond PIL's limit
    with pytest.raises(ImageFileError, match="decompression bomb guard"):
        probe_image(claiming(12_000), max_pixels=100_000_000)  # within PIL's limit, beyond max_pixels
    with pytest.raises(ImageFileError, match="max_pixels"):
        probe_image(AS_GIVEN[given](image_bytes("PNG", size=(100, 100))), max_pixels=5_000)


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_upload_reports_successes_duplicates_and_failures(ws, tmp_path, monkeypatch, workers):
    from mleval.images import ingest

    if workers == "processes":  # this upload is small: let it take the process path all the same
        monkeypatch.setattr(ingest, "PROCESS_MIN_FILES", 1)
    else:
        monkeypatch.setattr(ingest, "PROCESS_MIN_FILES", 10**9)
    folder = tmp_path / "incoming"
    (folder / "nested").mkdir(parents=True)
    for name, fmt, mode, options in GOOD:
        (folder / name).write_bytes(image_bytes(fmt, mode=mode, size=(70, 30), **options))
    (folder / "nested" / "copy.png").write_bytes((folder / "plain.png").read_bytes())
    for name, data, _ in BAD:
        (folder / name).write_bytes(data)
    (folder / ".DS_Store").write_bytes(b"junk")

    report = ws.images.upload(folder, split="validation", workers=2)

    assert len(report.succeeded) == len(GOOD)
    assert {r.filename for r in report.succeeded} == {g[0] for g in GOOD}
    assert all(r.dataset_split == "validation" and (r.width, r.height) == (70, 30) for r in report.succeeded)
    assert [d.source.endswith("copy.png") for d in report.duplicates] == [True]
    assert sorted(f.source.rsplit("/", 1)[-1] for f in report.failed) == sorted(b[0] for b in BAD)
    assert all(f.reason for f in report.failed)
    assert ws.images.count() == len(GOOD)
    stored = sorted(p.name for p in (ws.root / "blobs" / "sha256").rglob("*") if p.is_file())
    assert len(stored) == len(GOOD)  # failed files left nothing behind, the copy was stored once
    assert [p for p in (ws.root / "blobs" / "tmp").rglob("*") if p.is_file()] == []  # no temporary left


def test_files_on_disk_go_to_worker_processes_and_in_memory_data_to_threads(ws, tmp_path, monkeypatch):
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from mleval.images import ingest

    monkeypatch.setattr(ingest, "PROCESS_MIN_FILES", 2)
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for index, path in enumerate(paths):
        path.write_bytes(image_bytes(seed=index))
    on_disk = ingest.collect_sources(paths)
    in_memory = ingest.collect_sources([("a.png", image_bytes(seed=5))] * 3)
    cases = [(on_disk, 2, ProcessPoolExecutor), (on_disk, 1, ThreadPoolExecutor),
             (on_disk[:1], 2, ThreadPoolExecutor), (in_memory, 2, ThreadPoolExecutor)]
    for sources, workers, kind in cases:
        with ingest._FileWorkers(sources, ws.blobs, 10**8, workers) as (pool, task):
            assert isinstance(pool, kind)
            outcomes = pool.submit(task, 0, len(sources)).result()
        assert [blob.sha256 for _, blob in outcomes] == [hashlib.sha256(s.data or s.path.read_bytes()).hexdigest() for s in sources]


def test_upload_accepts_bytes_and_file_objects_and_dedupes_across_uploads(ws):
    data = image_bytes("PNG", seed=7)
    first = ws.images.upload([("a.png", data)], split="train")
    second = ws.images.upload([io.BufferedReader(_named(io.BytesIO(data), "b.png"))], split="test")
    assert len(first.succeeded) == 1 and second.succeeded == []
    assert second.duplicates[0].image_id == first.succeeded[0].id
    assert ws.images.get(first.succeeded[0].id).dataset_split == "train"  # a duplicate moves nothing


def _named(stream, name):
    stream.name = name
    return stream


def test_uploaded_bytes_are_kept_exactly(ws):
    data = image_bytes("TIFF", mode="I;16", size=(33, 21))
    record = ws.images.upload([("deep.tif", data)]).succeeded[0]
    assert ws.images.read_bytes(record) == data
    assert ws.images.open(record).size == (33, 21)
    assert record.metadata["mode"].startswith("I;16")


def test_an_image_whose_blob_was_deleted_is_a_duplicate_and_its_blob_comes_back(ws):
    data = image_bytes("PNG", seed=11)
    first = ws.images.upload([("a.png", data)]).succeeded[0]
    (ws.root / "blobs" / first.file_path).unlink()  # the catalog keeps the image, the store lost its bytes
    report = ws.images.upload([("again.png", data), ("new.png", image_bytes("PNG", seed=12))])
    assert [d.image_id for d in report.duplicates] == [first.id]
    assert [r.filename for r in report.succeeded] == ["new.png"] and report.failed == []
    assert ws.images.read_bytes(first) == data
    assert ws.images.count() == 2


def test_upload_into_a_dataset_and_bad_split(ws):
    ws.datasets.create("pets")
    report = ws.images.upload([(f"{i}.png", image_bytes(seed=i)) for i in range(3)], split="test", dataset="pets")
    assert ws.datasets.get("pets").test_count == 3
    assert len(ws.images.list(dataset="pets")) == len(report.succeeded) == 3
    with pytest.raises(ValidationError, match="split must be one of"):
        ws.images.upload([("x.png", image_bytes(seed=9))], split="val")


def test_upload_progress_is_reported(ws):
    calls = []
    ws.images.upload([(f"{i}.png", image_bytes(seed=i)) for i in range(3)], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)


def test_paths_under_the_home_folder_are_expanded_whether_str_or_path(tmp_path, monkeypatch):
    from mleval.images.ingest import collect_sources

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "a.png").write_bytes(image_bytes())
    for given in ("~/shots", Path("~/shots"), "~/shots/a.png", Path("~/shots/a.png")):
        assert [s.path for s in collect_sources(given)] == [tmp_path / "shots" / "a.png"], given
