"""Checkpoints: atomic writes (temp file in the same folder, fsync, os.replace, fsync of the
folder), keep_last, disk faults injected into the writers, and strict, safe loading of
hostile or broken files (exit code 2 naming the file and the array, never a traceback, never
unpickling)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nnctl.checkpoint
import nnctl.runs
from fault_helpers import (
    ROOT, assert_clean_failure, assert_same_arrays, cli, dropout_config, npz_arrays,
    only_run, rewrite_npz, summary, temp_files, tiny_config,
)
from nnctl.checkpoint import (
    META_ARRAY, atomic_write, load_checkpoint, remove_temp_files, save_checkpoint,
)
from nnctl.errors import CheckpointError, UserError

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def train(config, runs_dir, *extra):
    return cli("train", config, "--runs-dir", runs_dir, "--quiet", *extra)


# ---- atomic_write and save_checkpoint ----------------------------------------------------------

def test_atomic_write_uses_temp_file_fsync_replace_and_folder_fsync(tmp_path, monkeypatch):
    calls = []
    real_open, real_fsync, real_replace, real_os_open = open, os.fsync, os.replace, os.open

    def spy_open(path, *args, **kwargs):
        calls.append(("open", Path(path)))
        return real_open(path, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        fd = real_os_open(path, *args, **kwargs)
        calls.append(("os.open", Path(path), fd))
        return fd

    def spy_fsync(fd):
        calls.append(("fsync", fd))
        return real_fsync(fd)

    def spy_replace(src, dst):
        calls.append(("replace", Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(nnctl.checkpoint, "open", spy_open, raising=False)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "open", spy_os_open)
    target = tmp_path / "last.npz"
    atomic_write(target, lambda f: f.write(b"new"))
    monkeypatch.undo()

    kinds = [c[0] for c in calls]
    assert kinds == ["open", "fsync", "replace", "os.open", "fsync"], calls
    temp = calls[0][1]
    assert temp.parent == tmp_path, "the temp file must be in the same folder"
    assert re.fullmatch(rf"\.last\.npz\.tmp-{os.getpid()}-[0-9a-f]+", temp.name), temp.name
    assert calls[2][1:] == (temp, target)
    assert calls[3][1] == tmp_path and calls[4][1] == calls[3][2], "the folder is fsynced"
    assert target.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [target]


def checkpoint_pair(folder: Path, epoch: int) -> None:
    arrays = {"layers.0.W": np.full((3, 2), float(epoch), dtype=np.float32),
              "layers.0.b": np.zeros(2, dtype=np.float32)}
    save_checkpoint(folder, "last", arrays, {"epoch": epoch, "step": 10 * epoch, "batch": 0})


class FailingFile:
    """A file whose write puts `keep(data)` bytes on disk, then fails with `error`."""

    def __init__(self, f, error, keep):
        self.f, self.error, self.keep = f, error, keep

    def write(self, data):
        self.f.write(bytes(data)[:self.keep(data)])
        raise OSError(self.error.errno, self.error.strerror)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


FAULTS = {
    # where the fault strikes -> whether the new checkpoint (rather than the old) may result
    "open": False, "write": False, "fsync": False, "replace-npz": False,
    "replace-json": True, "fsync-dir-npz": True,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failing_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch, fault):
    checkpoint_pair(tmp_path, 1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_open, real_fsync, real_replace = open, os.fsync, os.replace
    dir_fsyncs = []

    def fake_open(path, mode="r", *args, **kwargs):
        if fault == "open":
            raise OSError(ENOSPC.errno, ENOSPC.strerror)
        f = real_open(path, mode, *args, **kwargs)
        # half of the data reaches the disk before the write fails
        return FailingFile(f, ENOSPC, lambda data: len(data) // 2) if fault == "write" else f

    def fake_fsync(fd):
        if fault == "fsync":
            raise OSError(errno.EIO, "Input/output error")
        if fault == "fsync-dir-npz" and os.path.isdir(f"/proc/self/fd/{fd}"):
            dir_fsyncs.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    def fake_replace(src, dst):
        if (fault == "replace-npz" and str(dst).endswith(".npz")) or \
                (fault == "replace-json" and str(dst).endswith(".json")):
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(nnctl.checkpoint, "open", fake_open, raising=False)
    monkeypatch.setattr(os, "fsync", fake_fsync)
    monkeypatch.setattr(os, "replace", fake_replace)
    with pytest.raises(UserError) as info:
        checkpoint_pair(tmp_path, 2)
    monkeypatch.undo()

    message = str(info.value)
    assert "last." in message and "cannot write" in message
    assert temp_files(tmp_path) == [], "the temporary file must be removed"
    arrays, meta = load_checkpoint(tmp_path, "last")
    if FAULTS[fault]:
        assert meta["epoch"] in (1, 2)
        assert float(arrays["layers.0.W"][0, 0]) == meta["epoch"]
    else:
        assert meta["epoch"] == 1
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_crash_between_npz_and_json_loads_the_newer_checkpoint(tmp_path):
    """The npz embeds its description: with the json one save behind, the npz still loads."""
    checkpoint_pair(tmp_path, 1)
    old_json = (tmp_path / "last.json").read_bytes()
    checkpoint_pair(tmp_path, 2)
    (tmp_path / "last.json").write_bytes(old_json)  # as if killed between the two renames
    arrays, meta = load_checkpoint(tmp_path, "last")
    assert meta["epoch"] == 2 and float(arrays["layers.0.W"][0, 0]) == 2.0


def test_remove_temp_files_removes_only_temporary_files(tmp_path):
    keep = ["last.npz", "last.json", "notes.tmp-1-abc", "tmp-last.npz", ".hidden"]
    drop = [".last.npz.tmp-123-abcdef", ".metrics.csv.tmp-9-000000", ".epoch-10.json.tmp-1-a"]
    for name in keep + drop:
        (tmp_path / name).write_text("x")
    removed = remove_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(drop)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


# ---- keep_last ---------------------------------------------------------------------------------

@pytest.mark.parametrize("keep_last, kept", [(3, [10, 11, 12]), (1, [12]), (0, [])])
def test_keep_last_keeps_the_newest_epochs_by_number(tmp_path, keep_last, kept):
    """Saved every epoch (every_seconds: 0), the newest keep_last epochs remain."""
    config = dropout_config(tmp_path, epochs=12, batch_size=96,
                            checkpoint={"keep_last": keep_last, "every_seconds": 0})
    assert train(config, tmp_path / "runs").exit_code == 0
    folder = only_run(tmp_path / "runs") / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    expected = ["best.json", "best.npz", "last.json", "last.npz"] + [
        f"epoch-{n}.{ext}" for n in kept for ext in ("json", "npz")]
    assert names == sorted(expected)
    for n in kept:
        assert load_checkpoint(folder, f"epoch-{n}")[1]["epoch"] == n
    if kept:
        assert_same_arrays(npz_arrays(folder / "last.npz"), npz_arrays(folder / "epoch-12.npz"))


# ---- disk faults during training ----------------------------------------------------------------

def inject_write_failure(monkeypatch, target: str, occurrence: int, error=ENOSPC):
    """Make the `occurrence`-th write of a file named `target` fail inside write(): an atomic
    write (through its temporary file), or an append (metrics.csv)."""
    real_open = open
    seen = []

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        name = Path(path).name
        if name.startswith(f".{target}.tmp-") or (name == target and "a" in mode):
            seen.append(path)
            if len(seen) == occurrence:
                return FailingFile(f, error, lambda data: 7)
        return f

    monkeypatch.setattr(nnctl.checkpoint, "open", fake_open, raising=False)
    monkeypatch.setattr(nnctl.runs, "open", fake_open, raising=False)
    return seen


@pytest.mark.parametrize("target, occurrence", [
    ("epoch-3.npz", 1), ("epoch-3.json", 1), ("metrics.csv", 3), ("config.yaml", 1),
])
def test_disk_full_during_training_exits_2_and_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch, target, occurrence):
    config = dropout_config(tmp_path, epochs=5, batch_size=96,
                            checkpoint={"keep_last": 3, "every_seconds": 0})
    seen = inject_write_failure(monkeypatch, target, occurrence)
    result = train(config, tmp_path / "runs")
    monkeypatch.undo()
    assert len(seen) >= occurrence, "the fault was never injected"
    err = assert_clean_failure(result, 2)
    assert "No space left on device" in err
    assert target in err
    run = only_run(tmp_path / "runs")
    assert temp_files(run) == []
    folder = run / "checkpoints"
    if target == "config.yaml":
        assert not any(folder.iterdir())
        return
    arrays, meta = load_checkpoint(folder, "last")
    assert meta["epoch"] == 2, "last must still be the checkpoint of the epoch before"
    assert (folder / "last.npz").read_bytes() == (folder / "epoch-2.npz").read_bytes()
    assert (folder / "last.json").read_bytes() == (folder / "epoch-2.json").read_bytes()
    assert summary(run)["status"] == "failed"
    assert "No space left on device" in summary(run)["message"]
    assert cli("eval", run, "--checkpoint", "last").exit_code == 0


def test_disk_full_on_the_last_link_keeps_the_previous_last(tmp_path, monkeypatch):
    """Replacing last.npz by the new epoch's checkpoint fails: the old last stays whole."""
    config = dropout_config(tmp_path, epochs=5, batch_size=96,
                            checkpoint={"keep_last": 3, "every_seconds": 0})
    real_replace = os.replace
    count = []

    def fake_replace(src, dst):
        if Path(dst).name == "last.npz":
            count.append(dst)
            if len(count) == 3:
                raise OSError(ENOSPC.errno, ENOSPC.strerror)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fake_replace)
    result = train(config, tmp_path / "runs")
    monkeypatch.undo()
    err = assert_clean_failure(result, 2)
    assert "last.npz" in err and "No space left on device" in err
    run = only_run(tmp_path / "runs")
    folder = run / "checkpoints"
    assert load_checkpoint(folder, "last")[1]["epoch"] == 2
    assert (folder / "last.npz").read_bytes() == (folder / "epoch-2.npz").read_bytes()
    assert temp_files(run) == []


def test_unwritable_train_log_exits_2(tmp_path, monkeypatch):
    config = tiny_config(tmp_path)
    real_open = open

    def fake_open(path, *args, **kwargs):
        if Path(path).name == "train.log":
            raise OSError(ENOSPC.errno, ENOSPC.strerror)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(nnctl.runs, "open", fake_open, raising=False)
    err = assert_clean_failure(train(config, tmp_path / "runs"), 2)
    assert "train.log" in err and "No space left on device" in err


def test_read_only_runs_folder_exits_2(tmp_path, monkeypatch):
    """As root, chmod does not stop writes: os.mkdir is made to refuse instead."""
    config = tiny_config(tmp_path)
    (tmp_path / "runs").mkdir()

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    err = assert_clean_failure(train(config, tmp_path / "runs"), 2)
    monkeypatch.undo()
    assert "Permission denied" in err and str(tmp_path / "runs") in err
    assert list((tmp_path / "runs").iterdir()) == []


def test_runs_folder_that_is_a_file_exits_2(tmp_path):
    config = tiny_config(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    err = assert_clean_failure(train(config, tmp_path / "runs"), 2)
    assert "runs" in err


def _fail_checkpoints_mkdir(monkeypatch):
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).name == "checkpoints":
            raise OSError(ENOSPC.errno, ENOSPC.strerror)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


def _fail_link_fsync(monkeypatch):
    def fsync_dir(folder):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(nnctl.runs, "fsync_dir", fsync_dir)


def _fail_prune_unlink(monkeypatch):
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self.name.startswith("epoch-"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)


@pytest.mark.parametrize("fault", [_fail_checkpoints_mkdir, _fail_link_fsync, _fail_prune_unlink],
                         ids=["checkpoints-mkdir", "link-fsync-dir", "prune-unlink"])
def test_every_disk_error_is_a_clean_exit_2(tmp_path, monkeypatch, fault):
    config = tiny_config(tmp_path, epochs=3, checkpoint={"keep_last": 1, "every_seconds": 0})
    fault(monkeypatch)
    result = train(config, tmp_path / "runs")
    monkeypatch.undo()
    err = assert_clean_failure(result, 2)
    assert "checkpoints" in err, err


# ---- safe loading: broken and hostile checkpoint files ------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    config = dropout_config(folder, epochs=3, batch_size=96)
    assert train(config, folder / "runs").exit_code == 0
    return only_run(folder / "runs")


@pytest.fixture
def run(finished_run, tmp_path):
    """A private copy of a finished run (hard links become separate files)."""
    copy = tmp_path / finished_run.name
    shutil.copytree(finished_run, copy)
    return copy


def eval_last(run):
    return cli("eval", run, "--checkpoint", "last")


def strip_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("format", "arrays")}


def test_the_intact_run_evaluates(run):
    assert eval_last(run).exit_code == 0
    assert cli("eval", run).exit_code == 0


def refused(run, *names, code=2):
    err = assert_clean_failure(eval_last(run), code)
    for name in names:
        assert name in err, (name, err)
    return err


@pytest.mark.parametrize("keep", [0, 1, 21, 100, 0.5, -22, -1])
def test_truncated_npz_is_refused(run, keep):
    path = run / "checkpoints" / "last.npz"
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data) if keep < 0 \
        else keep
    path.write_bytes(data[:cut])
    refused(run, "last.npz")


def test_truncated_json_is_refused(run):
    path = run / "checkpoints" / "last.json"
    path.write_bytes(path.read_bytes()[:-40])
    refused(run, "last.json", "not valid JSON")


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"x"', "\x00\xff\xfe", '{"arrays": 1}',
                                  "NaN", '{"format": 99, "arrays": {}}'])
def test_broken_json_is_refused(run, text):
    (run / "checkpoints" / "last.json").write_bytes(text.encode("utf-8", "surrogateescape")
                                                    if isinstance(text, str) else text)
    refused(run, "last.json")


class Boom:
    """Unpickling this would create a folder: proof that a pickle was executed."""

    marker = ""

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_object_array_is_refused_and_never_unpickled(run, tmp_path):
    path = run / "checkpoints" / "last.npz"
    arrays = npz_arrays(path, keep_meta=True)
    Boom.marker = str(tmp_path / "PWNED")
    arrays["layers.0.W"] = np.array([Boom()], dtype=object)
    rewrite_npz(path, arrays, allow_pickle=True)
    refused(run, "last.npz", "layers.0.W", "pickle")
    assert not (tmp_path / "PWNED").exists(), "a pickle inside the checkpoint was executed"


def test_the_briefs_object_array_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    np.savez(path, **{"layers.0.W": np.array([{"a": 1}], dtype=object)})
    refused(run, "last.npz", "layers.0.W")


def test_object_array_in_init_weights_is_refused_and_never_unpickled(tmp_path):
    weights = tmp_path / "init.npz"
    Boom.marker = str(tmp_path / "PWNED")
    np.savez(weights, **{"layers.0.W": np.array([Boom()], dtype=object)})
    config = tiny_config(tmp_path)
    err = assert_clean_failure(train(config, tmp_path / "runs", "--init-weights", weights), 2)
    assert "init.npz" in err and "layers.0.W" in err
    assert not (tmp_path / "PWNED").exists()


def test_missing_array_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    arrays = npz_arrays(path, keep_meta=True)
    del arrays["layers.2.b"]
    rewrite_npz(path, arrays)
    refused(run, "last.npz", "layers.2.b", "missing")


def test_extra_array_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    arrays = npz_arrays(path, keep_meta=True)
    arrays["layers.7.W"] = np.ones((2, 2), dtype=np.float32)
    rewrite_npz(path, arrays)
    refused(run, "last.npz", "layers.7.W")


def test_misshapen_array_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    arrays = npz_arrays(path, keep_meta=True)
    arrays["layers.0.W"] = np.ascontiguousarray(arrays["layers.0.W"].T)
    rewrite_npz(path, arrays)
    refused(run, "last.npz", "layers.0.W")


@pytest.mark.parametrize("change", ["shape", "dtype", "rename"])
def test_self_consistent_checkpoint_that_does_not_fit_the_model_is_refused(run, change):
    """npz, embedded meta and json agree with each other, but not with the run's config."""
    folder = run / "checkpoints"
    arrays, meta = load_checkpoint(folder, "last")
    if change == "shape":
        arrays["layers.0.W"] = np.zeros((7, 16), dtype=np.float32)
    elif change == "dtype":
        arrays["layers.0.W"] = arrays["layers.0.W"].astype(np.float64)
    else:
        arrays["layers.1.W"] = arrays.pop("layers.0.W")
    save_checkpoint(folder, "last", arrays, strip_meta(meta))
    refused(run, "last.npz", "layers.")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["layers.0.W", "optimizer.exp_avg_sq.1"])
def test_non_finite_values_are_refused(run, value, name):
    folder = run / "checkpoints"
    arrays, meta = load_checkpoint(folder, "last")
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = value
    save_checkpoint(folder, "last", arrays, strip_meta(meta))  # sha256 made consistent
    refused(run, "last.npz", name, "non-finite")


def test_changed_array_data_does_not_match_its_sha256(run):
    path = run / "checkpoints" / "last.npz"
    arrays = npz_arrays(path, keep_meta=True)
    arrays["layers.0.b"] = arrays["layers.0.b"] + np.float32(1e-3)
    rewrite_npz(path, arrays)
    refused(run, "last.npz", "layers.0.b", "sha256")


def test_sha256_in_json_not_matching_is_refused(run):
    """A json tampered at the same epoch/step is not "one save behind": it must be refused."""
    path = run / "checkpoints" / "last.json"
    meta = json.loads(path.read_text())
    meta["arrays"]["layers.2.W"]["sha256"] = "0" * 64
    path.write_text(json.dumps(meta, indent=1))
    refused(run, "layers.2.W", "sha256")


def test_shape_in_json_not_matching_is_refused(run):
    path = run / "checkpoints" / "last.json"
    meta = json.loads(path.read_text())
    meta["arrays"]["layers.0.W"]["shape"] = [1, 1]
    path.write_text(json.dumps(meta, indent=1))
    refused(run, "layers.0.W")


def test_json_tampered_at_the_same_position_is_refused(run):
    path = run / "checkpoints" / "last.json"
    meta = json.loads(path.read_text())
    meta["preprocessing"]["offset"] = [100.0] * len(meta["preprocessing"]["offset"])
    path.write_text(json.dumps(meta, indent=1))
    with pytest.raises(CheckpointError):
        load_checkpoint(run / "checkpoints", "last")
    refused(run, "last.json")


def test_embedded_meta_that_is_not_json_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    arrays = npz_arrays(path, keep_meta=True)
    arrays[META_ARRAY] = np.frombuffer(b"\xff{not json", dtype=np.uint8)
    rewrite_npz(path, arrays)
    refused(run, "last.npz", META_ARRAY)


@pytest.mark.parametrize("what", ["npz", "json", "both"])
def test_missing_checkpoint_files_are_refused(run, what):
    folder = run / "checkpoints"
    for ext in (["npz", "json"] if what == "both" else [what]):
        (folder / f"last.{ext}").unlink()
    refused(run, "last")


def test_npz_that_is_something_else_is_refused(run):
    folder = run / "checkpoints"
    (folder / "last.npz").write_text("layers.0.W,1,2,3\n")
    refused(run, "last.npz")
    (folder / "last.npz").unlink()
    (folder / "last.npz").mkdir()
    refused(run, "last.npz")


def test_corrupt_last_refuses_resume_and_predict(run):
    path = run / "checkpoints" / "last.npz"
    path.write_bytes(path.read_bytes()[:500])
    summary_path = run / "summary.json"
    data = json.loads(summary_path.read_text())
    data["status"] = "interrupted"
    summary_path.write_text(json.dumps(data))
    err = assert_clean_failure(cli("train", "--resume", run, "--quiet"), 2)
    assert "last.npz" in err
    import yaml
    data_file = yaml.safe_load((run / "config.yaml").read_text())["data"]["train"]
    err = assert_clean_failure(cli("predict", run, data_file, "--checkpoint", "last"), 2)
    assert "last.npz" in err


def test_every_truncation_is_refused_cleanly(finished_run, tmp_path):
    """Truncate last.npz at every 61st byte and last.json at every 23rd: load_checkpoint raises
    CheckpointError each time, nothing else."""
    folder = tmp_path / "ckpt"
    shutil.copytree(finished_run / "checkpoints", folder)
    npz, js = (folder / "last.npz").read_bytes(), (folder / "last.json").read_bytes()
    cases = 0
    for cut in range(0, len(npz), 61):
        (folder / "last.npz").write_bytes(npz[:cut])
        with pytest.raises(CheckpointError):
            load_checkpoint(folder, "last")
        cases += 1
    (folder / "last.npz").write_bytes(npz)
    for cut in range(0, len(js), 23):
        (folder / "last.json").write_bytes(js[:cut])
        with pytest.raises(CheckpointError):
            load_checkpoint(folder, "last")
        cases += 1
    print(f"truncations tried: {cases}")
    assert cases > 300


def central_directory_entries(data: bytes) -> list[int]:
    return [m.start() for m in re.finditer(rb"PK\x01\x02", data)]


def test_npz_with_an_unknown_compression_method_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    data = bytearray(path.read_bytes())
    entry = central_directory_entries(bytes(data))[0]
    data[entry + 10: entry + 12] = struct.pack("<H", 99)  # compression method 99
    path.write_bytes(bytes(data))
    refused(run, "last.npz")


def test_npz_with_a_mangled_array_header_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    data = path.read_bytes()
    start = data.index(f"{META_ARRAY}.npy".encode())
    header = data.index(b"{'descr'", start)
    path.write_bytes(data[:header] + b"z" + data[header + 1:])
    refused(run, "last.npz")


def npy_bytes(header: str, payload: bytes = b"\0" * 16) -> bytes:
    text = header.encode("latin1")
    pad = (64 - (10 + len(text) + 1) % 64) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


def test_npz_member_claiming_a_huge_shape_is_refused(run):
    path = run / "checkpoints" / "last.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("layers.0.W.npy", npy_bytes(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }"))
    refused(run, "last.npz")


# ---- no unsafe deserialization anywhere ------------------------------------------------------------

FORBIDDEN = [
    (r"\bimport\s+pickle\b|\bfrom\s+pickle\b", "import pickle"),
    (r"\bpickle\.", "pickle use"),
    (r"\byaml\.load\(", "yaml.load("),
    (r"\byaml\.unsafe_load\b|\bunsafe_load\(", "yaml.unsafe_load"),
    (r"\b(Full|Unsafe)?Loader\s*=\s*yaml\.(Full|Unsafe)?Loader\b", "unsafe YAML loader"),
    (r"allow_pickle\s*=\s*True", "allow_pickle=True"),
    (r"(?<![\w.])eval\(", "eval("),
    (r"(?<![\w.])exec\(", "exec("),
    (r"\bmarshal\b|\bshelve\b|\bdill\b|\bjoblib\b|read_pickle", "other pickle-like loaders"),
]


def test_no_unsafe_deserialization_in_the_package():
    sources = sorted((ROOT / "nnctl").rglob("*.py"))
    assert len(sources) > 10
    found = []
    for path in sources:
        text = path.read_text()
        for pattern, label in FORBIDDEN:
            for match in re.finditer(pattern, text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {label}")
        for match in re.finditer(r"np\.load\(([^)]*)\)", text):
            if "allow_pickle=False" not in match.group(1):
                found.append(f"{path.relative_to(ROOT)}: np.load without allow_pickle=False")
    assert found == []


# ---- divergence: exit 3, status diverged, no bad weights saved ----------------------------------

def diverging_config(folder: Path, lr: float, batch_size: int, validation=0.25, epochs=200):
    from fault_helpers import make_regression_csv, write_yaml

    csv_path = make_regression_csv(folder / "linear.csv", rows=64)
    return write_yaml(folder / "diverge.yaml", {
        "name": "diverge", "seed": 0,
        "data": {"train": str(csv_path), "validation": validation, "target": "y"},
        "model": {"layers": [{"type": "dense", "units": 4, "activation": "linear"},
                             {"type": "dense", "units": 1}]},
        "loss": "mse",
        "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.5},
        "training": {"epochs": epochs, "batch_size": batch_size,
                     "checkpoint": {"keep_last": 2}},
    })


def assert_no_bad_weights_saved(run: Path) -> int:
    """Every array of every checkpoint file is finite, and every checkpoint loads."""
    folder = run / "checkpoints"
    files = sorted(folder.glob("*.npz"))
    for path in files:
        for name, array in npz_arrays(path).items():
            if array.dtype.kind in "fc":
                assert np.isfinite(array).all(), f"{path.name}: {name} holds non-finite values"
        load_checkpoint(folder, path.stem)
    return len(files)


@pytest.mark.parametrize("lr, batch_size, where", [
    (3.0, 16, r"became (inf|nan|non-finite) at epoch \d+, batch \d+"),  # a training batch
    (2.0, 64, r"validation loss became (inf|nan) after epoch \d+"),        # the validation pass
])
def test_divergence_exits_3_and_saves_no_bad_weights(tmp_path, lr, batch_size, where):
    config = diverging_config(tmp_path, lr, batch_size)
    result = train(config, tmp_path / "runs")
    assert result.exit_code == 3, result.output
    assert re.search(where, result.stderr), result.stderr
    run = only_run(tmp_path / "runs")
    data = summary(run)
    assert data["status"] == "diverged"
    assert re.search(where, data["message"])
    assert "diverged" in (run / "train.log").read_text()
    epoch = int(re.search(r"epoch (\d+)", result.stderr).group(1))
    assert assert_no_bad_weights_saved(run) >= 3, "earlier epochs' checkpoints are kept"
    last = load_checkpoint(run / "checkpoints", "last")[1]
    assert last["epoch"] == epoch - 1 if "batch" in where else epoch - 1 <= last["epoch"] <= epoch
    assert cli("eval", run, "--checkpoint", "last").exit_code == 0


def test_divergence_on_the_shipped_regression_data(tmp_path):
    config = ROOT / "configs" / "diabetes.yaml"
    result = train(config, tmp_path / "runs", "--set", "optimizer={type: sgd, lr: 1000.0}",
                   "--set", "training.early_stopping=null")
    assert result.exit_code == 3
    assert re.search(r"epoch \d+, batch \d+", result.stderr), result.stderr
    run = only_run(tmp_path / "runs")
    assert summary(run)["status"] == "diverged"
    assert_no_bad_weights_saved(run)


def test_an_overflowing_last_step_of_an_epoch_is_not_saved(tmp_path):
    result = train(ROOT / "configs" / "diabetes.yaml", tmp_path / "runs",
                   "--set", "data.validation=null", "--set", "model.layers=[{type: dense, units: 1}]",
                   "--set", "optimizer={type: sgd, lr: 1.0e+37}", "--set", "training.epochs=3",
                   "--set", "training.batch_size=1000", "--set", "training.early_stopping=null",
                   "--set", "training.lr_schedule=null")
    assert result.exit_code == 3
    run = only_run(tmp_path / "runs")
    assert summary(run)["status"] == "diverged"
    assert_no_bad_weights_saved(run)


def test_overflowing_optimizer_state_is_not_saved(tmp_path):
    from fault_helpers import write_yaml

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 2)), 1e18 * (1 + rng.random(64))
    (tmp_path / "big.csv").write_text("x0,x1,y\n" + "".join(
        f"{a:.6g},{b:.6g},{t:.6g}\n" for (a, b), t in zip(x, y)))
    config = write_yaml(tmp_path / "adagrad.yaml", {
        "data": {"train": str(tmp_path / "big.csv"), "validation": 0.25, "target": "y"},
        "model": {"layers": [{"type": "dense", "units": 1}]}, "loss": "mse",
        "optimizer": {"type": "adagrad", "lr": 0.01},
        "training": {"epochs": 12, "batch_size": 1}})
    result = train(config, tmp_path / "runs")
    assert result.exit_code in (0, 3), result.output
    run = only_run(tmp_path / "runs")
    assert_no_bad_weights_saved(run)
    if result.exit_code == 0:
        assert cli("eval", run, "--checkpoint", "last").exit_code == 0
