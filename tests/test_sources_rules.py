"""Rules every reader of a label file follows: paths stay inside the data root, vote cells are finite
non-negative integers, label files are UTF-8, and a mutated file reads or fails with the reader's own error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from helpers import VOTES_HEADER, one_line_error, png, write_encoded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affectnetplus_hf.cli import main  # noqa: E402
from affectnetplus_hf.sources import RowError, open_source  # noqa: E402
from affectnetplus_hf.sources.affectnet import AffectNetSource  # noqa: E402
from affectnetplus_hf.sources.ferplus import FER2013NEW_COLUMNS, FerPlusSource  # noqa: E402
from affectnetplus_hf.sources.folder import FolderSource  # noqa: E402

OUTSIDE = ("../x.png", "/abs/x.png")


FOLDER_CSVS = {
    "votes.csv": (VOTES_HEADER, "{image},train,3,0,0,0,0,0,2,0"),
    "annotations.csv": ("image,annotator,label,split", "{image},a1,Neutral,train"),
    "labels.csv": ("image,label,split", "{image},Happy,train"),
}


@pytest.mark.parametrize("image", OUTSIDE)
@pytest.mark.parametrize("csv_name", list(FOLDER_CSVS))
def test_folder_reader_refuses_paths_outside_the_root(tmp_path: Path, csv_name: str, image: str) -> None:
    header, line = FOLDER_CSVS[csv_name]
    root = tmp_path / "data"
    png(root / "img" / "ok.png")
    path = write_encoded(
        root / csv_name, "\n".join([header, line.format(image="img/ok.png"), line.format(image=image)]) + "\n"
    )
    with pytest.raises(RowError, match=rf"{csv_name}:3: .*inside the data folder") as caught:
        FolderSource(root)
    assert str(path) in str(caught.value) and image in str(caught.value)
    source = FolderSource(root, skip_bad_rows=True)  # the row is skipped and reported when told to
    assert [r.image_id for r in source.records()] == ["img/ok.png"]
    assert source.skipped.counts() == {"bad_row": 1}


@pytest.mark.parametrize("image", ["../x.jpg", "/abs/x.jpg", "101/../../x.jpg"])
def test_affectnet_reader_refuses_paths_outside_the_image_folder(tmp_path: Path, image: str, affectnet_files) -> None:
    root = affectnet_files.write_csv_layout(
        tmp_path / "affectnet", [affectnet_files.row("101/a.jpg", 1), affectnet_files.row(image, 2)], make_images=False
    )
    source = AffectNetSource(root)
    with pytest.raises(RowError, match=r"training\.csv:3: .*inside") as caught:
        list(source.records())
    assert image in str(caught.value)


def _ferplus_root(root: Path, name: str) -> Path:
    header = ",".join(FER2013NEW_COLUMNS)
    write_encoded(
        root / "fer2013new.csv",
        f"{header}\nTraining,fer0000000.png,10,0,0,0,0,0,0,0,0,0\nTraining,{name},0,10,0,0,0,0,0,0,0,0\n",
    )
    png(root / "FER2013Train" / "fer0000000.png")
    return root


@pytest.mark.parametrize("name", OUTSIDE)
def test_ferplus_reader_refuses_names_outside_the_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(RowError, match=r"fer2013new\.csv:3: .*inside") as caught:
        FerPlusSource(_ferplus_root(tmp_path / "ferplus", name))
    assert name in str(caught.value)
    label_root = tmp_path / "label_csv"
    write_encoded(
        label_root / "FER2013Train" / "label.csv",
        f'fer0000000.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n{name},"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0\n',
    )
    with pytest.raises(RowError, match=r"label\.csv:2: .*inside"):
        FerPlusSource(label_root)


def test_symlinks_inside_the_root_are_still_read(tmp_path: Path, affectnet_files) -> None:
    from affectnetplus_hf.images import load_image

    elsewhere = png(tmp_path / "elsewhere" / "x.png")
    root = tmp_path / "data"
    root.mkdir()
    (root / "img").mkdir()
    (root / "img" / "link.png").symlink_to(elsewhere)
    write_encoded(
        root / "votes.csv",
        f"{VOTES_HEADER}\nimg/link.png,train,3,0,0,0,0,0,2,0\nimg/./b/../link.png,train,0,1,0,0,0,0,0,0\n",
    )
    records = list(FolderSource(root).records())
    assert [r.image_id for r in records] == ["img/link.png"]  # the same image normalised: the later row kept
    assert load_image(records[0]).size == (8, 8)
    # an AffectNet image folder that is itself a symlink to another disk
    affectnet = affectnet_files.write_csv_layout(
        tmp_path / "affectnet", [affectnet_files.row("101/a.jpg", 1)], make_images=False
    )
    png(tmp_path / "disk" / "101" / "a.jpg")
    (affectnet / "Manually_Annotated_Images").symlink_to(tmp_path / "disk", target_is_directory=True)
    [record] = list(AffectNetSource(affectnet).records())
    assert record.image_id == "Manually_Annotated_Images/101/a.jpg" and load_image(record).size == (8, 8)


@pytest.mark.parametrize("vote", ["1e300", "-1", "2.5", "nan", "inf", "9" * 30])
def test_votes_must_be_finite_non_negative_integers(tmp_path: Path, vote: str, caplog) -> None:
    root = tmp_path / "data"
    path = write_encoded(
        root / "votes.csv", f"{VOTES_HEADER}\nimg/a.png,train,3,0,0,0,0,0,2,0\nimg/b.png,train,{vote},0,0,0,0,0,0,0\n"
    )
    assert main(["info", str(root)]) == 1
    message = one_line_error(caplog)
    assert f"{path}:3" in message and "Neutral" in message and "integer" in message


def test_non_utf8_label_files_are_named(tmp_path: Path, caplog, affectnet_files) -> None:
    folder = write_encoded(
        tmp_path / "folder" / "votes.csv",
        f"{VOTES_HEADER}\nimg/caf\u00e9.png,train,3,0,0,0,0,0,2,0\n",
        encoding="latin-1",
    )
    with pytest.raises(ValueError, match="not UTF-8 text") as caught:
        FolderSource(folder.parent)
    assert str(folder) in str(caught.value)
    assert main(["info", str(folder.parent)]) == 1
    assert str(folder) in one_line_error(caplog)
    # header fine, a bad byte later in the file (decoded while reading rows)
    later = write_encoded(
        tmp_path / "later" / "votes.csv",
        f"{VOTES_HEADER}\n" + "img/a.png,train,1,0,0,0,0,0,0,0\n" * 3000 + "img/caf\u00e9.png,train,3,0,0,0,0,0,2,0\n",
        encoding="latin-1",
    )
    with pytest.raises(ValueError, match=rf"{later}: not UTF-8 text"):
        FolderSource(later.parent)
    affectnet = affectnet_files.write_csv_layout(
        tmp_path / "affectnet", [affectnet_files.row("101/a.jpg", 1)], make_images=False
    )
    lists = affectnet / "Manually_Annotated_file_lists" / "training.csv"
    lists.write_bytes(lists.read_bytes().replace(b"101/a.jpg", "101/caf\u00e9.jpg".encode("latin-1")))
    with pytest.raises(ValueError, match=rf"{lists}: not UTF-8 text"):
        list(open_source(affectnet).records())
    ferplus = _ferplus_root(tmp_path / "ferplus", "fer0000001.png")
    new_csv = ferplus / "fer2013new.csv"
    new_csv.write_bytes(new_csv.read_bytes().replace(b"fer0000001", "f\u00e9r0000001".encode("latin-1")))
    with pytest.raises(ValueError, match=rf"{new_csv}: not UTF-8 text"):
        FerPlusSource(ferplus)


def test_empty_vote_cell_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    path = write_encoded(root / "votes.csv", f"{VOTES_HEADER}\nimg/a.png,train,3,,0,0,0,0,2,0\n")
    with pytest.raises(RowError, match=rf"{path}:2: Happy is empty"):
        FolderSource(root)


#: Valid label files: (name, header, rows). The images they name exist (img/a.png, img/b.png; FER2013Train/).
VALID_FILES = {
    "votes.csv": (
        VOTES_HEADER.split(","),
        [
            ["img/a.png", "train", "3", "0", "0", "0", "0", "0", "2", "0"],
            ["img/b.png", "validation", "0", "4", "1", "0", "0", "0", "0", "0"],
        ],
    ),
    "annotations.csv": (
        ["image", "annotator", "label", "split"],
        [
            ["img/a.png", "a1", "Neutral", "train"],
            ["img/a.png", "a2", "anger", "train"],
            ["img/b.png", "a1", "3", "test"],
        ],
    ),
    "labels.csv": (["image", "label", "split"], [["img/a.png", "Happy", "train"], ["img/b.png", "none", "val"]]),
    "fer2013new.csv": (
        list(FER2013NEW_COLUMNS),
        [
            ["Training", "fer0000000.png", "10", "0", "0", "0", "0", "0", "0", "0", "0", "0"],
            ["PublicTest", "fer0000001.png", "2", "5", "0", "0", "0", "0", "0", "1", "1", "1"],
            ["Training", "", "0", "0", "0", "0", "0", "0", "0", "0", "5", "5"],
        ],
    ),
}


#: What the readers document: a malformed file or row is a ValueError (RowError, "not UTF-8 text", unknown
#: columns), a missing file a FileNotFoundError.
DOCUMENTED_ERRORS = (ValueError, FileNotFoundError)


PATHS = [
    "../x.png",
    "/abs/x.png",
    "C:/x.png",
    "img\\a.png",
    "img/./a.png",
    "img//a.png",
    "img/../img/a.png",
    ".",
    "",
    " ",
    "img/caf\u00e9.png",
    "img/a.png\x00",
    "a" * 300,
    "img/\u202eevil.png",
    "~/x.png",
    "img/a.png ",
]


NASTY = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            '"',
            '""',
            ",",
            "\n",
            "\r",
            "\r\n",
            "\x00",
            "\ufeff",
            "1e309",
            "-0",
            "0x10",
            "1_000",
            "\u0663",
            "nan",
            "9" * 40,
            "Neutral",
            "TRAIN",
            "a,b",
            '"a"b',
            "\t3\t",
        ]
    ),
)


_text_ops = st.one_of(
    st.tuples(st.just("cell"), st.integers(0, 10), st.integers(0, 12), NASTY),
    st.tuples(st.just("path"), st.integers(0, 10), st.sampled_from(PATHS)),
    st.tuples(st.just("header"), st.integers(0, 12), NASTY),
    st.tuples(st.just("drop_column"), st.integers(0, 12)),
    st.tuples(st.just("duplicate_column"), st.integers(0, 12)),
    st.tuples(st.just("swap_columns"), st.integers(0, 12), st.integers(0, 12)),
    st.tuples(st.just("header_case"), st.sampled_from(["upper", "lower", "pad"])),
    st.tuples(st.just("drop_row"), st.integers(0, 10)),
    st.tuples(st.just("duplicate_row"), st.integers(0, 10)),
    st.tuples(st.just("short_row"), st.integers(0, 10), st.integers(0, 12)),
    st.tuples(st.just("long_row"), st.integers(0, 10), NASTY),
)


_byte_ops = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 8)),
)


_mutation = st.fixed_dictionaries(
    {
        "name": st.sampled_from(sorted(VALID_FILES)),
        "text_ops": st.lists(_text_ops, max_size=3),
        "quoting": st.sampled_from(["csv", "join"]),
        "newline": st.sampled_from(["\n", "\r\n", "\r", "mixed"]),
        "final_newline": st.booleans(),
        "blank_lines": st.booleans(),
        "encoding": st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]),
        "byte_ops": st.lists(_byte_ops, max_size=2),
    }
)


def _mutate_table(header: list[str], rows: list[list[str]], ops) -> tuple[list[str], list[list[str]]]:
    header, rows = list(header), [list(r) for r in rows]
    width = len(header)
    for op in ops:
        kind = op[0]
        if kind == "cell" and rows:
            row = rows[op[1] % len(rows)]
            if row:
                row[op[2] % len(row)] = op[3]
        elif kind == "path" and rows:
            column = next((i for i, h in enumerate(header) if h.strip().lower() in ("image", "image name")), 0)
            row = rows[op[1] % len(rows)]
            if column < len(row):
                row[column] = op[2]
        elif kind == "header" and header:
            header[op[1] % len(header)] = op[2]
        elif kind in ("drop_column", "duplicate_column") and header:
            column = op[1] % len(header)
            for line in [header, *rows]:
                if column < len(line):
                    if kind == "drop_column":
                        del line[column]
                    else:
                        line.insert(column, line[column])
        elif kind == "swap_columns" and header:
            a, b = op[1] % width, op[2] % width
            for line in [header, *rows]:
                if a < len(line) and b < len(line):
                    line[a], line[b] = line[b], line[a]
        elif kind == "header_case":
            header = [{"upper": h.upper(), "lower": h.lower(), "pad": f" {h} "}[op[1]] for h in header]
        elif kind == "drop_row" and rows:
            del rows[op[1] % len(rows)]
        elif kind == "duplicate_row" and rows:
            rows.insert(op[1] % len(rows), list(rows[op[1] % len(rows)]))
        elif kind == "short_row" and rows:
            row = rows[op[1] % len(rows)]
            del row[op[2] % max(1, len(row)) :]
        elif kind == "long_row" and rows:
            rows[op[1] % len(rows)].append(op[2])
    return header, rows


def _render(header: list[str], rows: list[list[str]], m: dict) -> bytes:
    import csv
    import io

    lines = []
    for line in [header, *rows]:
        if m["quoting"] == "csv":
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(line)
            lines.append(buffer.getvalue())
        else:
            lines.append(",".join(line))
        if m["blank_lines"]:
            lines.append("")
    if m["newline"] == "mixed":
        text = "".join(line + ("\r\n", "\n", "\r")[k % 3] for k, line in enumerate(lines))
        text = text if m["final_newline"] else text.rstrip("\r\n")
    else:
        text = m["newline"].join(lines) + (m["newline"] if m["final_newline"] else "")
    data = text.encode(m["encoding"], errors="replace")
    for op in m["byte_ops"]:
        at = int(op[1] * len(data))
        if op[0] == "truncate":
            data = data[:at]
        elif op[0] == "insert":
            data = data[:at] + op[2] + data[at:]
        else:
            data = data[:at] + data[at + op[2] :]
    return data


def _read_everything(root: Path, name: str) -> None:
    """Open the folder with its reader (and through open_source) and read every record of every split."""
    readers = [lambda: FerPlusSource(root)] if name == "fer2013new.csv" else [lambda: FolderSource(root)]
    readers.append(lambda: open_source(root))
    for reader in readers:
        try:
            source = reader()
            for split in source.splits:
                for record in source.records(split):
                    assert record.image_id and record.split == split
        except DOCUMENTED_ERRORS as error:
            assert str(error)  # an error names what is wrong


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutation)
def test_mutated_label_files_read_or_fail_with_the_readers_errors(m: dict) -> None:
    import tempfile

    header, rows = VALID_FILES[m["name"]]
    header, rows = _mutate_table(header, rows, m["text_ops"])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for image in ("img/a.png", "img/b.png", "FER2013Train/fer0000000.png", "FER2013Valid/fer0000001.png"):
            (root / image).parent.mkdir(parents=True, exist_ok=True)
            (root / image).write_bytes(b"")  # the readers check names, not pixels
        (root / m["name"]).write_bytes(_render(header, rows, m))
        _read_everything(root, m["name"])


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_unmutated_label_files_read(tmp_path: Path, name: str) -> None:
    header, rows = VALID_FILES[name]
    png(tmp_path / "img" / "a.png")
    png(tmp_path / "FER2013Train" / "fer0000000.png")
    write_encoded(tmp_path / name, "\n".join(",".join(line) for line in [header, *rows]) + "\n")
    source = FerPlusSource(tmp_path) if name == "fer2013new.csv" else FolderSource(tmp_path)
    assert sum(1 for split in source.splits for _ in source.records(split)) == 2
