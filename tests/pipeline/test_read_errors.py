"""Unreadable inputs and model files (issue 11, class 3): every failure is one ValueError / one stderr line that names
the file and the problem, exit status 1, and no output file; a model file never brings torch's unsafe advice."""
from __future__ import annotations

import collections
import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import segment
from pipeline.sources.loading import read_table
from pipeline.segmentation.segmenter import CustomerSegmenter, read_raw_table
from pipeline.sources.synthetic import generate
from somtorch import SOM
from somtorch.som import FILE_FORMAT

TORCH_ADVICE = "weights_only"  # torch's error text suggests re-running with weights_only=False


@pytest.fixture(scope="module")
def raw_csv_text() -> str:
    return generate(60, seed=3).transactions.to_csv(index=False)


@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[CustomerSegmenter, Path]:
    segmenter = CustomerSegmenter("behavioural", x=3, y=3, iters=300, n_clusters=3, seed=0, device="cpu")
    segmenter.fit(generate(80, seed=0).transactions)
    return segmenter, segmenter.save(tmp_path_factory.mktemp("model") / "model.pt")


def broken_table(kind: str, folder: Path, csv_text: str) -> Path:
    """A file of the given kind of breakage, built from a valid CSV text."""
    if kind == "not gzip":
        path = folder / "plain.csv.gz"
        path.write_text(csv_text)
    elif kind == "truncated gzip":
        path = folder / "cut.csv.gz"
        packed = gzip.compress(csv_text.encode())
        path.write_bytes(packed[: len(packed) * 2 // 3])
    elif kind == "0-byte csv":
        path = folder / "empty.csv"
        path.write_bytes(b"")
    elif kind == "0-byte gzip":
        path = folder / "empty.csv.gz"
        path.write_bytes(b"")
    elif kind == "folder":
        path = folder / "looks_like_a_file.csv"
        path.mkdir()
    elif kind == "binary csv":
        path = folder / "binary.csv"
        path.write_bytes(np.random.default_rng(0).integers(128, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "binary parquet":
        path = folder / "binary.parquet"
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8).tobytes())
    else:
        raise AssertionError(kind)
    return path


TABLE_PROBLEMS = {
    "not gzip": "not a valid gzip file",
    "truncated gzip": "compressed stream is truncated",
    "0-byte csv": "the file is empty (0 bytes)",
    "0-byte gzip": "the file is empty (0 bytes)",
    "folder": "it is a folder, not a table file",
    "binary csv": "not a UTF-8 text file",
    "binary parquet": "Parquet",
}


@pytest.mark.parametrize("kind", list(TABLE_PROBLEMS))
def test_unreadable_table_is_one_value_error_naming_file_and_problem(
    kind: str, tmp_path: Path, raw_csv_text: str
) -> None:
    path = broken_table(kind, tmp_path, raw_csv_text)
    for reader in (lambda: read_table(path), lambda: read_raw_table(path, "bigbazaar")):
        with pytest.raises(ValueError) as caught:
            reader()
        message = str(caught.value)
        assert message.startswith(f"cannot read {path}: ") and TABLE_PROBLEMS[kind] in message
        assert "\n" not in message


def test_a_valid_gzip_of_the_same_text_reads_fine(tmp_path: Path, raw_csv_text: str) -> None:
    path = tmp_path / "good.csv.gz"
    path.write_bytes(gzip.compress(raw_csv_text.encode()))
    assert len(read_table(path)) == raw_csv_text.count("\n") - 1  # header line excluded


@pytest.mark.parametrize("kind", ["not gzip", "truncated gzip", "0-byte csv", "folder", "binary csv"])
def test_segment_cli_reports_an_unreadable_table_in_one_line_and_writes_nothing(
    kind: str, tmp_path: Path, raw_csv_text: str, fitted_model: tuple[CustomerSegmenter, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = broken_table(kind, tmp_path, raw_csv_text)
    out = tmp_path / "scored"
    assert segment.main([str(fitted_model[1]), str(data), "--output-dir", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segment.py: error: ValueError: cannot read ")
    assert str(data) in lines[0] and TABLE_PROBLEMS[kind] in lines[0]
    assert sorted(out.rglob("*")) == []  # the probe file is gone, nothing was written


def foreign_model(kind: str, folder: Path, good: Path) -> Path:
    """A model path of the given kind of breakage; ``good`` is a real CustomerSegmenter model.pt."""
    path = folder / f"{kind.replace(' ', '_')}.pt"
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(2).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        content = good.read_bytes()
        path.write_bytes(content[: len(content) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"weights": collections.OrderedDict(a=1), "kind": set([1, 2])}))
    elif kind == "torch objects":
        torch.save({"counter": collections.Counter("abc"), "buffer": io.BytesIO}, path)
    elif kind == "torch list":
        torch.save([torch.zeros(3)], path)
    elif kind == "folder":
        path.mkdir()
    else:
        raise AssertionError(kind)
    return path


MODEL_PROBLEMS = {
    "random bytes": "not a torch file",
    "truncated": "truncated or damaged torch file",
    "empty": "the file is empty",
    "pickle": "a pickle, not a torch file",
    "torch objects": "objects other than tensors and plain values",
    "torch list": "it holds a list",
    "folder": "it is a folder",
}


def assert_not_a_model(error: BaseException, path: Path, problem: str) -> None:
    message = str(error)
    assert isinstance(error, ValueError)
    assert message.startswith(f"{path} is not a somtorch model (") and problem in message, message
    assert TORCH_ADVICE not in message and "\n" not in message
    assert error.__suppress_context__ or error.__cause__ is None  # torch's advice is not chained either
    assert error.__cause__ is None or TORCH_ADVICE not in str(error.__cause__)


@pytest.mark.parametrize("kind", list(MODEL_PROBLEMS))
def test_foreign_model_files_are_not_somtorch_models(
    kind: str, tmp_path: Path, fitted_model: tuple[CustomerSegmenter, Path]
) -> None:
    path = foreign_model(kind, tmp_path, fitted_model[1])
    for loader in (CustomerSegmenter.load, SOM.load):
        with pytest.raises(ValueError) as caught:
            loader(path, device="cpu")
        assert_not_a_model(caught.value, path, MODEL_PROBLEMS[kind])


@pytest.mark.parametrize("missing", ["som", "preprocessor", "clustering", "training_metrics"])
def test_segmenter_model_with_the_right_format_tag_and_a_missing_part(
    missing: str, tmp_path: Path, fitted_model: tuple[CustomerSegmenter, Path]
) -> None:
    state = fitted_model[0].state_dict()
    del state[missing]
    path = tmp_path / "incomplete.pt"
    torch.save(state, path)
    with pytest.raises(ValueError) as caught:
        CustomerSegmenter.load(path, device="cpu")
    assert_not_a_model(caught.value, path, f"missing key {missing!r}")


@pytest.mark.parametrize("missing", ["weights", "hyperparameters", "rng"])
def test_som_model_with_the_right_format_tag_and_a_missing_part(missing: str, tmp_path: Path) -> None:
    state = SOM(3, 4, 2, random_seed=0).state_dict()
    assert state["format"] == FILE_FORMAT
    del state[missing]
    path = tmp_path / "incomplete_som.pt"
    torch.save(state, path)
    with pytest.raises(ValueError) as caught:
        SOM.load(path, device="cpu")
    assert_not_a_model(caught.value, path, f"missing key {missing!r}")


def test_a_som_file_is_not_a_segmenter_model(tmp_path: Path) -> None:
    path = SOM(2, 2, 3, random_seed=0).save(tmp_path / "som.pt")
    with pytest.raises(ValueError) as caught:
        CustomerSegmenter.load(path, device="cpu")
    assert_not_a_model(caught.value, path, f"format {FILE_FORMAT!r}: it is not a CustomerSegmenter model")


@pytest.mark.parametrize("kind", ["random bytes", "truncated", "pickle", "torch objects"])
def test_segment_cli_reports_a_foreign_model_in_one_line_and_writes_nothing(
    kind: str, tmp_path: Path, raw_csv_text: str, fitted_model: tuple[CustomerSegmenter, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = foreign_model(kind, tmp_path, fitted_model[1])
    data = tmp_path / "new.csv"
    data.write_text(raw_csv_text)
    out = tmp_path / "scored"
    assert segment.main([str(model), str(data), "--output-dir", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"segment.py: error: ValueError: {model} is not a somtorch model (")
    assert MODEL_PROBLEMS[kind] in lines[0] and TORCH_ADVICE not in lines[0]
    assert sorted(out.rglob("*")) == []
