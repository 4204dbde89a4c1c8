"""The COCO, YOLO and VOC readers on broken annotation files: a tiny valid dataset reads cleanly, and a
truncated, overwritten, random or oddly valued file gives either a dataset whose problems are ItemErrors
naming the file (and the line, for YOLO label files) or an MlevalError naming the file (with line and
column for a file that does not parse), never a raw library exception."""

from __future__ import annotations

import contextlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import yaml
from hypothesis import example, given, note
from hypothesis import strategies as st

from mleval.core.errors import MlevalError
from mleval.formats import LabelledDataset, read_coco, read_voc, read_yolo
from mleval.formats.records import ItemError
from tests.unit.conftest import png_file
from tests.unit.formats.test_formats_coco import _doc, _write
from tests.unit.formats.test_formats_voc import _XML, _voc
from tests.unit.formats.test_formats_yolo import _dataset

WHERE = re.compile(r"line \d+, column \d+")

COCO_JSON = json.dumps(_doc()).encode()  # what _write puts in instances.json

YOLO_YAML = b"path: .\ntrain: images/train\nval: val.txt\nnames:\n  0: cat\n  1: dog\n"
YOLO_LABEL = "labels/train/a.txt"
YOLO_LABELS = {
    YOLO_LABEL: "0 0.5 0.5 0.25 0.5\n\n1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n",
    "labels/val/b.txt": "1 0.5 0.5 1 1 0.875\n",
    "val.txt": "./images/val/b.jpg\n",
}
YOLO_IMAGES = {"images/train/a.png": (16, 16), "images/val/b.jpg": (16, 16)}

VOC_ID = "2008_000001"  # the first of _voc's two ids: its XML is the one broken
VOC_XML = _XML.format(filename=f"{VOC_ID}.jpg", w=20, h=10).encode()


# ---------------------------------------------------------------- datasets (built once, one file swapped per example)


@pytest.fixture(scope="module")
def coco_json(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("coco"), _doc(), png_file)


@pytest.fixture(scope="module")
def yolo_root(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("yolo") / "ds", png_file, YOLO_YAML.decode(), YOLO_LABELS, YOLO_IMAGES)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    return _voc(tmp_path_factory.mktemp("voc") / "VOC2012", png_file)


@contextlib.contextmanager
def swapped(path: Path, data: bytes) -> Iterator[None]:
    """``path`` holds ``data`` inside the block, its original bytes again after it (shown when a test fails)."""
    note(f"{path.name} holds {data!r}")
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


# ---------------------------------------------------------------- strategies


def _overwrite(original: bytes, patches: list[tuple[int, int]]) -> bytes:
    data = bytearray(original)
    for position, value in patches:
        data[position] = value
    return bytes(data)


def corruptions(original: bytes) -> st.SearchStrategy[bytes]:
    """``original`` cut at a random byte, with random bytes overwritten, or replaced by random text or bytes."""
    return st.one_of(
        st.integers(0, len(original) - 1).map(lambda n: original[:n]),
        st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
            lambda patches: _overwrite(original, patches)
        ),
        st.text(max_size=300).map(str.encode),
        st.binary(max_size=300),
    )


_odd_numbers = st.sampled_from([10**400, -(10**400), 2**63, float("nan"), float("inf"), float("-inf"), 1e308, -0.0])
_odd_strings = st.sampled_from(["1", "2.5", "a.png", "b.png", "", " ", "../a.png", "/etc/hostname", "x" * 300 + ".png"])
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 40), st.floats(), st.text(max_size=8), _odd_numbers, _odd_strings
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_numbers = st.one_of(st.integers(-5, 40), st.floats(), _odd_numbers, st.sampled_from(["1", "2.5", "nan", None]))
_rle = st.fixed_dictionaries(
    {
        "size": st.one_of(st.just([20, 30]), st.lists(_numbers, min_size=2, max_size=2), json_values),
        "counts": st.one_of(st.text(max_size=20), st.lists(st.integers(0, 600), max_size=5), json_values),
    }
)
COCO_FIELDS = {
    "images": ("id", "file_name", "width", "height", "split"),
    "annotations": ("id", "image_id", "category_id", "bbox", "segmentation", "iscrowd", "score"),
    "categories": ("id", "name"),
}
COCO_FIELD_VALUES = {
    "bbox": st.one_of(st.lists(_numbers, min_size=4, max_size=4), st.lists(json_scalars, max_size=6), json_values),
    "segmentation": st.one_of(
        st.lists(st.lists(_numbers, min_size=6, max_size=10), min_size=1, max_size=3),
        st.lists(st.lists(json_scalars, max_size=10), max_size=3),
        _rle,
        json_values,
    ),
    "score": st.one_of(_numbers, json_values),
    "width": st.one_of(_numbers, json_values),
    "height": st.one_of(_numbers, json_values),
    "file_name": st.one_of(_odd_strings, json_values),
    "image_id": st.one_of(st.sampled_from([10, 11, 10.0, "10", [10], {"id": 10}]), json_values),
    "category_id": st.one_of(st.sampled_from([3, 7, 3.0, "3", [3], {"id": 3}]), json_values),
    "id": st.one_of(st.sampled_from([10, 11, 3, 7, [1], {"a": 1}, None]), json_values),
}
_COCO_SLOTS = [(section, key) for section, keys in COCO_FIELDS.items() for key in keys]


@st.composite
def coco_documents(draw) -> bytes:
    """Valid JSON: ``_doc()`` with random fields replaced or removed, entries or whole sections replaced."""
    doc = _doc()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["field"] * 6 + ["entry", "section"]))
        section, key = draw(st.sampled_from(_COCO_SLOTS))
        entries = doc.get(section)
        if kind == "section":
            if draw(st.integers(0, 3)) == 0:
                doc.pop(section, None)
            else:
                doc[section] = draw(json_values)
        elif isinstance(entries, list) and entries:
            index = draw(st.integers(0, len(entries) - 1))
            if kind == "entry":
                entries[index] = draw(json_values)
            elif isinstance(entries[index], dict):
                if draw(st.integers(0, 5)) == 0:
                    entries[index].pop(key, None)
                else:
                    entries[index][key] = draw(COCO_FIELD_VALUES.get(key, json_values))
    return json.dumps(doc).encode()


def coco_with(section: str, index: int, **fields) -> bytes:
    """``_doc()`` as JSON, with ``fields`` set in its ``section``'s entry ``index``."""
    doc = _doc()
    doc[section][index].update(fields)
    return json.dumps(doc).encode()


@st.composite
def coco_entry_values(draw, section: str, keys: tuple[str, ...]) -> bytes:
    """Valid JSON: ``_doc()`` with the ``keys`` of every ``section`` entry each kept, removed or random."""
    doc = _doc()
    for entry in doc[section]:
        for key in keys:
            choice = draw(st.integers(0, 3))
            if choice == 1:
                entry.pop(key, None)
            elif choice > 1:
                entry[key] = draw(COCO_FIELD_VALUES.get(key, json_values))
    return json.dumps(doc).encode()


_xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)  # what XML 1.0 can hold
_numberish = st.one_of(
    st.sampled_from(["1", "3.5", "20", "0", "-4", "nan", "inf", "-inf", "1e400", "1e308", "0x10", " 7 ", "", "١٢"]),
    st.floats().map(repr),
    st.integers(-(10**30), 10**30).map(str),
    _xml_text,
)
_maybe = lambda values: st.one_of(st.none(), values)  # noqa: E731  (None: the tag is left out)
_DECLARATIONS = [
    "",
    '<?xml version="1.0"?>\n',
    '<?xml version="1.0" encoding="utf-8"?>\n',
    '<?xml version="1.0" encoding="latin-1"?>\n',
    '<?xml version="1.0" encoding="cp932"?>\n',
    '<?xml version="1.0" encoding="utf-32"?>\n',
    '<?xml version="1.0" encoding="no-such-codec"?>\n',
]


def _tag(tag: str, value: str | None) -> str:
    return "" if value is None else f"<{tag}>{escape(value)}</{tag}>"


@st.composite
def voc_documents(draw) -> bytes:
    """Well-formed VOC XML whose tags are randomly left out or hold random (often non-numeric) text."""
    filename = draw(_maybe(st.one_of(st.sampled_from([f"{VOC_ID}.jpg", "2008_000002.jpg", "missing.jpg",
                                                      "../x.jpg", "/etc/hostname", "x" * 300 + ".jpg"]), _xml_text)))
    parts = [draw(st.sampled_from(_DECLARATIONS)), "<annotation>", _tag("filename", filename)]
    if draw(st.booleans()):
        parts.append("<size>" + _tag("width", draw(_maybe(_numberish))) + _tag("height", draw(_maybe(_numberish)))
                     + "</size>")
    for _ in range(draw(st.integers(0, 3))):
        fields = [_tag("name", draw(_maybe(st.one_of(st.sampled_from(["dog", "cat"]), _xml_text))))]
        fields += [_tag(flag, draw(_maybe(_numberish))) for flag in ("pose", "truncated", "difficult", "occluded")]
        if draw(st.integers(0, 4)):
            corners = "".join(_tag(tag, draw(_maybe(_numberish))) for tag in ("xmin", "ymin", "xmax", "ymax"))
            fields.append(f"<bndbox>{corners}</bndbox>")
        parts.append("<object>" + "".join(fields) + "</object>")
    parts.append("</annotation>\n")
    return "".join(parts).encode()


_token = st.one_of(
    st.sampled_from(["0", "1", "2", "0.5", "1.0", "-0.2", "nan", "inf", "-inf", "1e400", "0x1", "+.5", "1_0", "١"]),
    st.floats().map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text(st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")), min_size=1, max_size=6),
)


@st.composite
def yolo_label_texts(draw) -> bytes:
    """Lines of random tokens (numbers, odd numbers, words), joined by one kind of line break."""
    lines = draw(st.lists(st.lists(_token, max_size=12).map(" ".join), max_size=6))
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines).encode()


_YAML_RAW = [
    "cat", "[cat, dog]", "{0: cat, 1: dog}", "{.inf: cat}", "{.nan: cat}", "{1.5: cat}", "{-1: cat}", "{a: cat}",
    "[]", "{}", "~", "[null, '']", "2020-13-01", "2001-02-30", "2001-02-03", "!!binary AAAA", "!!python/name:os.system",
    "*a", "&a [*a, 1]", "'unterminated", "[a", "{", "1e400", ".inf", "yes", "images/train", "val.txt", "images",
    "images/nope", "labels/train/a.txt", ".", "..", "\x00", "\x07x",
]
_yaml_values = st.one_of(
    st.sampled_from(_YAML_RAW),
    st.text(st.characters(blacklist_characters="/\\\n\r", blacklist_categories=("Cs",)), max_size=12),
)
_YAML_KEYS = [".inf", "-.inf", ".nan", "1.0e+400", "1.5", "-1", "0", "1", "0x1", "a", "~", "true", "'2'", "[1]"]
_YAML_VALUES = {
    "nc": st.sampled_from(["2", "0", "-1", "2.5", "two", "true", "~", "[2]"]),  # a huge nc is a huge list of names
    "names": st.one_of(
        st.lists(st.sampled_from(_YAML_KEYS), min_size=1, max_size=3).map(
            lambda keys: "{" + ", ".join(f"{key}: c{i}" for i, key in enumerate(keys)) + "}"
        ),
        st.lists(st.sampled_from(["cat", "~", "''", "1", "[x]", "{a: b}", ".nan"]), max_size=3).map(
            lambda names: "[" + ", ".join(names) + "]"
        ),
        _yaml_values,
    ),
}


@st.composite
def yolo_yaml_texts(draw) -> bytes:
    """data.yaml lines ``key: value`` with raw YAML values: odd names, tags, dates, anchors, control characters.
    Values never hold '/' or '\\': an absolute ``train:`` would have the reader walk this machine's disk."""
    lines = {"path": ".", "train": "images/train", "val": "val.txt", "names": "{0: cat, 1: dog}"}
    for key in draw(st.lists(st.sampled_from(["path", "train", "val", "validation", "test", "names", "names", "nc"]),
                             min_size=1, max_size=4)):
        if draw(st.integers(0, 4)) == 0:
            lines.pop(key, None)
        else:
            lines[key] = draw(_YAML_VALUES.get(key, _yaml_values))
    return "\n".join(f"{key}: {value}" for key, value in lines.items()).encode()


# ---------------------------------------------------------------- the rule every outcome must follow


def read_or_clear_error(read: Callable[[], LabelledDataset], file_name: str) -> tuple[LabelledDataset | None, str]:
    """The dataset, or None and the message of the MlevalError raised, which must name ``file_name``.
    Anything else raised (a raw KeyError, UnicodeDecodeError, ParseError...) fails the test as is."""
    try:
        return read(), ""
    except MlevalError as exc:
        assert file_name in str(exc), f"the error does not name {file_name}: {exc}"
        return None, str(exc)


def assert_items_name_files(dataset: LabelledDataset, base: Path) -> None:
    """Every problem is an ItemError with a reason, whose ``item`` starts with a file of the dataset
    (``file``, ``file:line`` or ``file: entry``), relative to the dataset's folder or one above it."""
    for error in dataset.errors:
        assert isinstance(error, ItemError) and isinstance(error.reason, str) and error.reason.strip(), error
        name = re.sub(r":\d+$", "", error.item.split(": ", 1)[0])
        assert name and not name.startswith("/"), error
        assert any((folder / name).exists() for folder in (base, *list(base.parents)[:3])), (
            f"{error.item!r} does not name a file of the dataset"
        )


def json_problem(data: bytes) -> Exception | None:
    try:
        json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return exc
    return None


def yaml_problem(data: bytes) -> Exception | None:
    try:
        yaml.safe_load(data)
    except (yaml.YAMLError, ValueError) as exc:  # PyYAML's timestamps raise ValueError ("2020-13-01")
        return exc
    return None


def xml_problem(data: bytes) -> Exception | None:
    try:
        ET.fromstring(data)
    except (ET.ParseError, ValueError, LookupError) as exc:  # the last two: an unusable declared encoding
        return exc
    return None


def check_coco(path: Path, data: bytes) -> None:
    with swapped(path, data):
        dataset, message = read_or_clear_error(lambda: read_coco(path), path.name)
    problem = json_problem(data)
    if problem is not None:
        assert dataset is None, f"{path.name} does not parse ({problem}) yet was read"
        assert WHERE.search(message), f"no line and column in: {message}"
        if isinstance(problem, json.JSONDecodeError):
            assert f"line {problem.lineno}, column {problem.colno}" in message, message
        return
    if dataset is None:
        if isinstance(json.loads(data), list):
            assert "read_coco_results" in message, message
        else:
            assert "JSON list" not in message, f"a JSON {type(json.loads(data)).__name__} is not a list: {message}"
        return
    assert_items_name_files(dataset, path.parent)
    assert all(e.item.startswith(f"{path.name}: ") for e in dataset.errors), dataset.errors


def check_yolo_label(root: Path, data: bytes) -> None:
    with swapped(root / YOLO_LABEL, data):
        dataset, _ = read_or_clear_error(lambda: read_yolo(root), YOLO_LABEL)
    assert dataset is not None, "a broken label file must not stop the whole dataset"
    assert_items_name_files(dataset, root)
    lines = data.decode("utf-8-sig", errors="replace").splitlines()
    non_blank = {n for n, line in enumerate(lines, 1) if line.strip()}
    label_errors = [e for e in dataset.errors if e.item.startswith(YOLO_LABEL)]
    numbers = [int(m.group(1)) if (m := re.fullmatch(rf"{YOLO_LABEL}:(\d+)", e.item)) else None for e in label_errors]
    assert None not in numbers, f"label errors must name the line: {label_errors}"
    assert set(numbers) <= non_blank and len(set(numbers)) == len(numbers), (numbers, non_blank)
    image = next(img for img in dataset.images if img.file_name == "a.png")
    assert len(image.objects) + len(label_errors) == len(non_blank), "every non-blank line is an object or an error"


def check_yolo_list(root: Path, data: bytes) -> None:
    with swapped(root / "val.txt", data):
        dataset, _ = read_or_clear_error(lambda: read_yolo(root), "val.txt")
    assert dataset is not None, "a broken image list must not stop the whole dataset"
    assert_items_name_files(dataset, root)
    lines = data.decode("utf-8-sig", errors="replace").splitlines()
    non_blank = {n for n, line in enumerate(lines, 1) if line.strip()}
    list_errors = [e.item for e in dataset.errors if e.item.startswith("val.txt")]
    assert all(re.fullmatch(r"val\.txt:\d+", item) and int(item[8:]) in non_blank for item in list_errors), list_errors


def check_yolo_yaml(root: Path, data: bytes) -> None:
    with swapped(root / "data.yaml", data):
        dataset, message = read_or_clear_error(lambda: read_yolo(root), "data.yaml")
    problem = yaml_problem(data)
    if problem is not None:
        assert dataset is None, f"data.yaml does not parse ({problem}) yet was read"
        assert WHERE.search(message), f"no line and column in: {message}"
        mark = getattr(problem, "problem_mark", None)
        if mark is not None:
            assert f"line {mark.line + 1}, column {mark.column + 1}" in message, message
    elif dataset is not None:
        assert_items_name_files(dataset, root)


def check_voc(root: Path, data: bytes) -> None:
    item = f"Annotations/{VOC_ID}.xml"
    with swapped(root / item, data):
        dataset, _ = read_or_clear_error(lambda: read_voc(root), item)
    assert dataset is not None, "a broken annotation file must not stop the whole dataset"
    assert_items_name_files(dataset, root)
    file_errors = [e for e in dataset.errors if e.item == item]
    object_errors = [e for e in dataset.errors if e.item.startswith(f"{item}: object ")]
    problem = xml_problem(data)
    if problem is not None:
        assert len(dataset.images) == 1 and len(file_errors) == 1, dataset.errors
        if isinstance(problem, ET.ParseError):
            assert str(problem) in file_errors[0].reason and WHERE.search(file_errors[0].reason), file_errors
        else:
            assert "encoding" in file_errors[0].reason, file_errors
        return
    if len(dataset.images) == 1:  # left out as a whole: said once, for the file
        assert len(file_errors) == 1 and not object_errors, dataset.errors
        return
    assert not file_errors, file_errors
    objects = len(ET.fromstring(data).findall("object"))
    assert len(dataset.images[0].objects) + len(object_errors) == objects, "every <object> is an object or an error"


# ---------------------------------------------------------------- sanity: the untouched datasets read cleanly


def test_valid_coco_dataset_reads_without_errors(coco_json):
    dataset = read_coco(coco_json)
    assert dataset.errors == [] and dataset.categories == ["cat", "dog"]
    assert [len(img.objects) for img in dataset.images] == [2, 2]


def test_valid_yolo_dataset_reads_without_errors(yolo_root):
    dataset = read_yolo(yolo_root)
    assert dataset.errors == [] and dataset.categories == ["cat", "dog"]
    assert sorted((img.file_name, len(img.objects)) for img in dataset.images) == [("a.png", 2), ("b.jpg", 1)]


def test_valid_voc_dataset_reads_without_errors(voc_root):
    dataset = read_voc(voc_root)
    assert dataset.errors == [] and dataset.categories == ["cat", "dog"]
    assert [len(img.objects) for img in dataset.images] == [2, 2]


# ---------------------------------------------------------------- broken bytes


@given(data=corruptions(COCO_JSON))
@example(data=b'{"images": [\xff]}')  # once "cannot be read (... in position 12 ...)": no line and column
@example(data=b"3")  # once "is a JSON list"
def test_coco_truncated_or_garbled_json_is_an_error_naming_the_file(coco_json, data):
    check_coco(coco_json, data)


@given(data=corruptions(YOLO_LABELS[YOLO_LABEL].encode()))
@example(data=b"inf 0.5 0.5 0.2 0.2\nnan 0.5 0.5 0.2 0.2\n")  # once an OverflowError
def test_yolo_truncated_or_garbled_label_file_gives_item_errors_naming_file_and_line(yolo_root, data):
    check_yolo_label(yolo_root, data)


@given(data=corruptions(YOLO_LABELS["val.txt"].encode()))
@example(data=b"./images/val/b.jpg\n\xff\n")  # once a UnicodeDecodeError
@example(data=b"./images/" + b"x" * 300 + b".jpg\n")  # once an OSError: file name too long
def test_yolo_truncated_or_garbled_image_list_gives_item_errors_naming_file_and_line(yolo_root, data):
    check_yolo_list(yolo_root, data)


@given(data=corruptions(YOLO_YAML))
@example(data=YOLO_YAML + b"x: 2020-13-01\n")  # once a ValueError from PyYAML's date constructor
@example(data=YOLO_YAML + b"x: \x00\n")  # once only an offset ("position 69"): no line and column
@example(data=YOLO_YAML + b"x: \xff\n")
def test_yolo_truncated_or_garbled_data_yaml_is_an_error_naming_the_file(yolo_root, data):
    check_yolo_yaml(yolo_root, data)


@given(data=corruptions(VOC_XML))
@example(data=b'<?xml version="1.0" encoding="cp932"?>' + VOC_XML)  # once a ValueError from expat
@example(data=b'<?xml version="1.0" encoding="no-such-codec"?>' + VOC_XML)  # once a LookupError
def test_voc_truncated_or_garbled_xml_gives_item_errors_naming_the_file(voc_root, data):
    check_voc(voc_root, data)


# ---------------------------------------------------------------- files that parse, with odd values


@given(data=coco_documents())
@example(data=coco_with("categories", 0, id=[7]))  # each of these once a TypeError: unhashable type
@example(data=coco_with("images", 0, id={"a": 1}))
@example(data=coco_with("annotations", 0, image_id=[10]))
@example(data=coco_with("annotations", 0, category_id=[7]))
@example(data=json.dumps({**_doc(), "images": {"a": 1}}).encode())
@example(data=coco_with("annotations", 0, bbox=[10**400, 0, 1, 1]))  # each of these once an OverflowError
@example(data=coco_with("annotations", 0, score=10**400))
@example(data=coco_with("annotations", 0, bbox=None, segmentation={"size": [float("inf"), 30], "counts": "a"}))
@example(data=coco_with("images", 0, file_name="x" * 300 + ".png"))  # once an OSError: file name too long
def test_coco_json_with_random_field_values_gives_item_errors_naming_the_file(coco_json, data):
    check_coco(coco_json, data)


@pytest.mark.parametrize(
    ("section", "keys"),
    [
        ("images", COCO_FIELDS["images"]),
        ("annotations", ("bbox", "segmentation", "score", "iscrowd")),  # ids kept: the values reach the parser
        ("categories", COCO_FIELDS["categories"]),
    ],
)
@given(data=st.data())
def test_coco_entries_with_random_field_values_give_item_errors(coco_json, section, keys, data):
    check_coco(coco_json, data.draw(coco_entry_values(section, keys), label="instances.json"))


@given(data=yolo_label_texts())
def test_yolo_label_lines_of_random_tokens_give_item_errors_naming_file_and_line(yolo_root, data):
    check_yolo_label(yolo_root, data)


@given(data=yolo_yaml_texts())
@example(data=b"train: images/train\nnames: {.inf: cat}\n")  # once an OverflowError
def test_yolo_data_yaml_with_random_values_is_read_or_an_error_naming_the_file(yolo_root, data):
    check_yolo_yaml(yolo_root, data)


@given(data=voc_documents())
@example(data=VOC_XML.replace(b"<width>20</width>", b"<width>inf</width>"))  # each once an OverflowError
@example(data=VOC_XML.replace(b"<truncated>1</truncated>", b"<truncated>1e400</truncated>"))
@example(data=VOC_XML.replace(b"2008_000001.jpg", b"x" * 300 + b".jpg"))  # once an OSError: file name too long
def test_voc_xml_with_random_tag_values_gives_item_errors_naming_the_file(voc_root, data):
    check_voc(voc_root, data)
