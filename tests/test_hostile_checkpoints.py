"""Hostile checkpoints, and one process at a time in a run directory.

Each hostile checkpoint is crafted from one tiny trained iris run (json and the npz's embedded
meta.json kept consistent where a lie should be believed): zip bombs (a 3 MB npz whose member
inflates to 3 GiB), integers too long to parse, preprocessing that does not fit the model, a
trainer state out of range, RNG words PCG64 cannot take. `nnctl eval`, `nnctl predict` and
`nnctl train --resume` on each exit 2, naming the file and the field, without a traceback,
within a timeout and a bound on their address space; the other checkpoint (`best` after a bad
`last`, and the reverse) still loads.

The CLI runs in real processes, forked from a small server that has imported numpy, pandas
and nnctl once (a fresh interpreter costs about two seconds here): each child runs
nnctl.cli.main with RLIMIT_AS set, an alarm as timeout, its own stdout and stderr, and the
server reports its exit status, peak memory (wait4's ru_maxrss) and wall time.

Also: writes that fail on a read-only disk are reported (exit 2), not lost in the cleanup;
two resumes of one run, or a resume of a run still training, are refused with "in use"; the
lock is released when its holder is killed; and hypothesis puts arbitrary JSON values at each
field of a valid description: load_checkpoint, nnctl.load and a resume's checks raise
CheckpointError (a UserError) and nothing else."""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import nnctl
import nnctl.checkpoint
from cli_helpers import DATASETS, tiny_iris_config, train
from fault_helpers import subprocess_env, temp_files
from nnctl.checkpoint import META_ARRAY, atomic_write, describe, load_checkpoint
from nnctl.errors import CheckpointError, UserError
from nnctl.locking import LOCK_FILE, lock_run

MEMORY = 3 * 1024**3    # RLIMIT_AS of every CLI process
TIMEOUT = 60            # seconds per CLI process (SIGALRM)
PEAK_LIMIT = 600 * 1024**2  # bytes of resident memory a refused checkpoint may cost
BOMB_SIZE = 3 * 1024**3  # what a bomb member inflates to
IRIS = DATASETS / "iris.csv"
MEASURED: dict = {}     # printed at the end of the module (pytest -s)


# ---- processes with a memory bound and a timeout -----------------------------------------------

FORK_SERVER = r"""
import json, os, resource, signal, sys, time, traceback
import numpy, pandas
import nnctl.cli, nnctl.api, nnctl.data, nnctl.checkpoint
started = {}
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "start":
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
                null = os.open(os.devnull, os.O_RDONLY)
                out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(null, 0); os.dup2(out, 1); os.dup2(err, 2)
                signal.alarm(request["timeout"])
                sys.argv = ["nnctl", *request["args"]]
                try:
                    nnctl.cli.main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code)
        started[pid] = time.monotonic()
        print(json.dumps({"pid": pid}), flush=True)
    else:
        pid, status, usage = os.wait4(request["pid"], 0)
        print(json.dumps({"status": status, "maxrss": usage.ru_maxrss * 1024,
                          "seconds": time.monotonic() - started.pop(pid)}), flush=True)
"""


class Result:
    def __init__(self, args, status: int, maxrss: int, seconds: float, out: Path, err: Path):
        self.args, self.maxrss, self.seconds = args, maxrss, seconds
        self.signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        self.code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        self.stdout = out.read_text(errors="replace")
        self.stderr = err.read_text(errors="replace")

    def __repr__(self) -> str:
        return (f"nnctl {' '.join(map(str, self.args))}: code {self.code}, signal "
                f"{self.signal}, {self.seconds:.2f} s, peak {self.maxrss / 2**20:.0f} MB\n"
                f"stderr: {self.stderr[-3000:]}")


class ForkServer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=subprocess_env())
        self.pending: dict[int, tuple] = {}

    def start(self, *args, timeout: int = TIMEOUT) -> int:
        self.count += 1
        out, err = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        request = {"op": "start", "args": [str(a) for a in args], "stdout": str(out),
                   "stderr": str(err), "memory": MEMORY, "timeout": timeout}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        pid = json.loads(self.proc.stdout.readline())["pid"]
        self.pending[pid] = (args, out, err)
        return pid

    def wait(self, pid: int) -> Result:
        self.proc.stdin.write(json.dumps({"op": "wait", "pid": pid}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        args, out, err = self.pending.pop(pid)
        return Result(args, reply["status"], reply["maxrss"], reply["seconds"], out, err)

    def run(self, *args) -> Result:
        return self.wait(self.start(*args))

    def run_all(self, commands: list[tuple]) -> list[Result]:
        """Start every command, then wait for each (they run side by side)."""
        pids = [self.start(*command) for command in commands]
        return [self.wait(pid) for pid in pids]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("processes")
    server = ForkServer(folder)
    yield server
    server.close()
    if MEASURED:
        print("\nhostile checkpoints, measured:")
        for key, value in MEASURED.items():
            print(f"  {key}: {value}")


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit code 2 with an `error: ` line per problem, every fragment on stderr, no
    traceback, within the time and memory bounds."""
    assert result.code == 2, result
    assert "Traceback" not in result.stderr, result
    assert "MemoryError" not in result.stderr, result
    assert result.stderr.startswith("error: "), result
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result)
    assert result.maxrss < PEAK_LIMIT, result
    assert result.seconds < 20, result


def assert_ok(result: Result) -> None:
    assert result.code == 0, result
    assert "Traceback" not in result.stderr, result


# ---- the run, and copies of it ------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    config = folder / "iris.yaml"
    config.write_text(tiny_iris_config(3))
    _, run_dir = train(config, folder / "runs")
    return run_dir


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the finished run (its hard links become separate files)."""
    copy_dir = tmp_path / trained.name
    shutil.copytree(trained, copy_dir)
    return copy_dir


def mark_interrupted(run: Path, epochs: int | None = None) -> None:
    """Make the run one that `--resume` continues (to `epochs`, if given)."""
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    summary["status"] = "interrupted"
    path.write_text(json.dumps(summary))
    if epochs is not None:
        config_path = run / "config.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["training"]["epochs"] = epochs
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def replace_file(path: Path, data: bytes) -> None:
    """Write a new file in place of `path` (a new inode: a hard link to it keeps the old)."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def read_pair(run: Path, stem: str) -> tuple[dict, dict]:
    with np.load(run / "checkpoints" / f"{stem}.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays.pop(META_ARRAY).tobytes())
    return arrays, meta


def write_pair(run: Path, stem: str, arrays: dict, text: str) -> None:
    """Write the json and the npz's embedded meta.json with the same text."""
    folder = run / "checkpoints"
    data = text.encode("utf-8")
    replace_file(folder / f"{stem}.json", data)
    (folder / f"{stem}.npz").unlink()
    np.savez(folder / f"{stem}.npz", **arrays, **{META_ARRAY: np.frombuffer(data, np.uint8)})


def lie(run: Path, stem: str, change, arrays_change=None) -> None:
    """Change the description (and arrays), consistently in the json and the npz: the sha256
    and shapes of the arrays are recomputed, so only what the change says is false."""
    arrays, meta = read_pair(run, stem)
    if arrays_change is not None:
        arrays_change(arrays)
        meta["arrays"] = describe(arrays)
    text = change(meta)
    write_pair(run, stem, arrays, text if isinstance(text, str) else json.dumps(meta, indent=1))


# ---- zip bombs ------------------------------------------------------------------------------------

def npy_header(descr: str, shape: tuple) -> bytes:
    text = ("{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, shape)).encode()
    pad = (64 - (10 + len(text) + 1) % 64) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from those of A and B (zlib's crc32_combine), so the CRC of
    3 GiB of zeros behind any header costs no pass over 3 GiB."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = [_gf2_times(odd, odd[n]) for n in range(32)]
    odd = [_gf2_times(even, even[n]) for n in range(32)]
    while length2:
        even = [_gf2_times(odd, odd[n]) for n in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = [_gf2_times(even, even[n]) for n in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
    return crc1 ^ crc2


class Zeros:
    """A raw deflate stream of BOMB_SIZE zero bytes, built from one compressed 16 MiB block
    repeated (each ends with a full flush, so the copies are independent and identical)."""

    BLOCK = 16 * 1024 * 1024

    def __init__(self):
        block = bytes(self.BLOCK)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
        self.piece = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
        assert first == self.piece
        self.count = BOMB_SIZE // self.BLOCK
        crc = zlib.crc32(block)
        self.crc, length = crc, self.BLOCK
        for _ in range(self.count - 1):  # 3 GiB of zeros, one block at a time, combined
            self.crc = crc32_combine(self.crc, crc, self.BLOCK)
            length += self.BLOCK
        assert length == BOMB_SIZE

    def member(self, head: bytes) -> tuple[bytes, int, int]:
        """(deflated data, CRC-32, size) of `head` followed by BOMB_SIZE zeros."""
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        start = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
        data = start + self.piece * self.count + b"\x03\x00"  # an empty final block
        return data, crc32_combine(zlib.crc32(head), self.crc, BOMB_SIZE), len(head) + BOMB_SIZE


@pytest.fixture(scope="module")
def zeros() -> Zeros:
    return Zeros()


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int, int]]) -> None:
    """A zip file of (name, data, crc, size, method, declared size) members: the central
    directory declares `declared size` (a lie when it differs from `size`)."""
    body, central = bytearray(), bytearray()
    for name, data, crc, _size, method, declared in members:
        raw = name.encode()
        offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data),
                            declared, len(raw), 0) + raw + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                               len(data), declared, len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(central), len(body), 0)
    replace_file(path, bytes(body + central + end))


def members_of(path: Path) -> list[list]:
    with zipfile.ZipFile(path) as z:
        return [[i.filename, z.read(i), i.CRC, i.file_size, zipfile.ZIP_STORED, i.file_size]
                for i in z.infolist()]


def bomb(run: Path, stem: str, zeros: Zeros, member: str = "layers.0.W.npy",
         head: bytes | None = None, declare_true_size: bool = True) -> None:
    """Put a member that inflates to 3 GiB into the npz, in place of `member` (or beside the
    others if it is not one of them). Its .npy header claims the whole size, unless `head`
    is given; the central directory declares the true size unless `declare_true_size` is
    False, when it declares the size of the member it replaces."""
    path = run / "checkpoints" / f"{stem}.npz"
    members = members_of(path)
    head = head if head is not None else npy_header("<f4", (BOMB_SIZE // 4,))
    data, crc, size = zeros.member(head)
    names = [m[0] for m in members]
    if member in names:
        entry = members[names.index(member)]
        declared = size if declare_true_size else entry[3]
        members[names.index(member)] = [member, data, crc, size, zipfile.ZIP_DEFLATED, declared]
    else:
        members.append([member, data, crc, size, zipfile.ZIP_DEFLATED, size])
    write_zip(path, members)
    MEASURED.setdefault("bomb npz size", f"{path.stat().st_size / 2**20:.1f} MB, a member "
                                          f"inflating to {BOMB_SIZE / 2**30:.0f} GiB")


def test_the_bomb_is_a_valid_zip_that_inflates_to_3_gib(run, zeros):
    bomb(run, "last", zeros)
    path = run / "checkpoints" / "last.npz"
    assert path.stat().st_size < 5 * 2**20
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("layers.0.W.npy")
        assert info.file_size > BOMB_SIZE and info.compress_type == zipfile.ZIP_DEFLATED
        with z.open(info) as f:
            start = f.read(64 * 2**20)  # the first 64 MiB inflate as they should
        assert start[:6] == b"\x93NUMPY" and not any(start[128:])


# ---- the hostile checkpoints ----------------------------------------------------------------------

def _huge_integer(run, stem, zeros):
    lie(run, stem, lambda m: json.dumps(m).replace('"step": 24', '"step": ' + "9" * 5000))


def _offsets(run, stem, zeros):
    def change(meta):
        meta["preprocessing"]["offset"] = meta["preprocessing"]["offset"][:2]
        meta["preprocessing"]["spread"] = meta["preprocessing"]["spread"][:2]
    lie(run, stem, change)


def _classes(run, stem, zeros):
    lie(run, stem, lambda m: m["preprocessing"].update(classes=["setosa", "versicolor"]))


def _task(run, stem, zeros):
    lie(run, stem, lambda m: m["preprocessing"].update(task="regression"))


def _scale(run, stem, zeros):
    lie(run, stem, lambda m: m["preprocessing"].update(scale="bogus"))


def _negative_step(run, stem, zeros):
    def change(meta):
        meta["step"] = meta["trainer"]["step"] = -3
    lie(run, stem, change)


def _negative_epoch(run, stem, zeros):
    def change(meta):
        meta["epoch"] = meta["trainer"]["epoch"] = -5
    lie(run, stem, change)


def _epoch_beyond_config(run, stem, zeros):
    def change(meta):
        meta["epoch"] = meta["trainer"]["epoch"] = 50
    lie(run, stem, change)


def _rng_words(run, stem, zeros):
    def change_arrays(arrays):
        arrays["rng.shuffle"] = np.full(6, 2**64 - 1, dtype=np.uint64)
    lie(run, stem, lambda m: None, change_arrays)


def _nan(run, stem, zeros):
    lie(run, stem, lambda m: m["trainer"].update(lr=float("nan")))


def _text_for_a_number(run, stem, zeros):
    lie(run, stem, lambda m: m["trainer"].update(batch="0"))


def _bomb_member(run, stem, zeros):
    bomb(run, stem, zeros)


def _bomb_lying_size(run, stem, zeros):
    # the central directory declares the size the json describes; the data inflates to 3 GiB
    bomb(run, stem, zeros, head=npy_header("<f4", (4, 8)), declare_true_size=False)


def _bomb_undescribed(run, stem, zeros):
    bomb(run, stem, zeros, member="extra.npy")


def _bomb_meta(run, stem, zeros):
    bomb(run, stem, zeros, member=f"{META_ARRAY}.npy", head=npy_header("|u1", (BOMB_SIZE,)))


def _bomb_described(run, stem, zeros):
    """The json (and the embedded copy) describe the 3 GiB array too: the model refuses it
    before it is read."""
    head = npy_header("<f4", (BOMB_SIZE // 4,))
    arrays, meta = read_pair(run, stem)
    meta["arrays"]["layers.0.W"] = {"shape": [BOMB_SIZE // 4], "dtype": "float32",
                                    "sha256": "0" * 64}
    write_pair(run, stem, arrays, json.dumps(meta, indent=1))
    bomb(run, stem, zeros, head=head)


def _json_too_large(run, stem, zeros):
    path = run / "checkpoints" / f"{stem}.json"
    replace_file(path, path.read_bytes() + b" " * (9 * 2**20))


def _json_is_dev_zero(run, stem, zeros):
    path = run / "checkpoints" / f"{stem}.json"
    path.unlink()
    path.symlink_to("/dev/zero")


def _deep_json(run, stem, zeros):
    lie(run, stem, lambda m: json.dumps(m).replace('"metrics": {', '"metrics": '
                                                   + "[" * 100_000 + "]" * 100_000
                                                   + ', "x": {', 1))


J, N = "{stem}.json", "{stem}.npz"
CASES = {
    # name: (craft, fragments on stderr (file names, fields), exact line or None)
    "huge-integer": (_huge_integer, [J, "trainer.step", "5000 digits"]),
    "offsets": (_offsets, [J, "preprocessing.offset", "2 values", "4 scaled inputs"]),
    "classes": (_classes, [J, "preprocessing.classes", "3 output units"]),
    "task-regression": (_task, [J, "preprocessing.task", "classification"]),
    "scale-bogus": (_scale, [J, "preprocessing.scale", "bogus"]),
    "negative-step": (_negative_step, [J, "trainer.step: must be >= 0 (got -3)"]),
    "negative-epoch": (_negative_epoch, [J, "trainer.epoch: must be >= 0 (got -5)"]),
    "epoch-beyond-config": (_epoch_beyond_config, [J, "trainer.epoch: must be <= 3"]),
    "rng-words": (_rng_words, [N, "rng.shuffle", "has_uint32"]),
    "nan": (_nan, [J, "trainer.lr", "NaN"]),
    "text-for-a-number": (_text_for_a_number, [J, "trainer.batch", "whole number"]),
    "bomb": (_bomb_member, [N, "layers.0.W", "not inflated"]),
    "bomb-lying-size": (_bomb_lying_size, [N, "layers.0.W", "CRC"]),
    "bomb-undescribed": (_bomb_undescribed, [N, "'extra'", "not listed"]),
    "bomb-meta": (_bomb_meta, [N, META_ARRAY, "at most 8 MB"]),
    "bomb-described": (_bomb_described, [N, "layers.0.W", "does not fit"]),
    "json-too-large": (_json_too_large, [J, "larger than 8 MB"]),
    "json-is-dev-zero": (_json_is_dev_zero, [J, "device"]),
    "deep-json": (_deep_json, [J, "nested too deeply"]),
}


def fragments(case: str, folder: Path, stem: str) -> list[str]:
    return [str(folder / f.format(stem=stem)) if f in (J, N) else f for f in CASES[case][1]]


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_last_is_refused_and_best_still_loads(server, run, zeros, case):
    """eval, predict and resume of the bad `last` exit 2 naming the file and the field, fast
    and in bounded memory; `best` evaluates as before."""
    CASES[case][0](run, "last", zeros)
    mark_interrupted(run)
    folder = run / "checkpoints"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK_FILE}
    results = server.run_all([
        ("eval", run, "--checkpoint", "last"),
        ("predict", run, IRIS, "--checkpoint", "last"),
        ("train", "--resume", run, "--quiet"),
    ])
    for result in results:
        assert_refused(result, *fragments(case, folder, "last"))
    seconds = max(r.seconds for r in results)
    peak = max(r.maxrss for r in results)
    MEASURED[f"last: {case}"] = f"exit 2 in {seconds:.2f} s, peak {peak / 2**20:.0f} MB"
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK_FILE}
    assert after == before, "a refused resume changed the run"
    assert_ok(server.run("eval", run))  # best


BEST_CASES = ["huge-integer", "offsets", "negative-epoch", "rng-words", "bomb", "bomb-meta"]


@pytest.mark.parametrize("case", BEST_CASES)
def test_a_hostile_best_is_refused_and_last_still_loads_and_resumes(server, run, zeros, case):
    CASES[case][0](run, "best", zeros)
    folder = run / "checkpoints"
    results = server.run_all([("eval", run), ("predict", run, IRIS)])
    for result in results:
        assert_refused(result, *fragments(case, folder, "best"))
    MEASURED[f"best: {case}"] = (f"exit 2 in {max(r.seconds for r in results):.2f} s, peak "
                                 f"{max(r.maxrss for r in results) / 2**20:.0f} MB")
    assert_ok(server.run("eval", run, "--checkpoint", "last"))
    mark_interrupted(run, epochs=4)  # one more epoch: it is the best, and replaces `best`
    assert_ok(server.run("train", "--resume", run, "--quiet"))
    assert_ok(server.run("eval", run, "--checkpoint", "last"))


def test_normal_commands_work_within_the_bounds(server, run):
    """The bounds are not what refuses the hostile files: the intact run works under them."""
    results = server.run_all([("eval", run, "--checkpoint", "last"),
                              ("predict", run, IRIS, "--checkpoint", "last")])
    for result in results:
        assert_ok(result)
    assert len(results[1].stdout.splitlines()) == 151
    mark_interrupted(run, epochs=5)
    resumed = server.run("train", "--resume", run, "--quiet")
    assert_ok(resumed)
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 5
    MEASURED["intact run"] = (f"eval {results[0].seconds:.2f} s, peak "
                              f"{results[0].maxrss / 2**20:.0f} MB; resume "
                              f"{resumed.seconds:.2f} s, peak {resumed.maxrss / 2**20:.0f} MB")


def test_the_bounded_reader_stops_at_its_bound(tmp_path, zeros):
    """A member read through _read_member inflates no further than the bound, whatever the
    zip declares; read_npz with expected sizes does not inflate a larger member at all."""
    path = tmp_path / "bomb.npz"
    data, crc, size = zeros.member(npy_header("<f4", (BOMB_SIZE // 4,)))
    write_zip(path, [["x.npy", data, crc, size, zipfile.ZIP_DEFLATED, size]])
    started = time.monotonic()
    with zipfile.ZipFile(path) as archive:
        with pytest.raises(nnctl.checkpoint._Refused, match="inflates beyond 4096 bytes"):
            nnctl.checkpoint._read_member(archive, archive.getinfo("x.npy"), 4096)
    with pytest.raises(CheckpointError, match="not inflated"):
        nnctl.checkpoint.read_npz(path, {"x": 128})
    with pytest.raises(CheckpointError, match="would inflate"):
        nnctl.checkpoint.read_npz(path)
    assert time.monotonic() - started < 2


def test_a_zip_directory_of_too_many_members_is_refused_before_it_is_parsed(tmp_path):
    """An end record that declares 10**9 members (zip64) is refused before zipfile builds an
    object per member."""
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**9, 10**9,
                            46 * 10**9, 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                      0xFFFFFFFF, 0)
    path = tmp_path / "many.npz"
    path.write_bytes(zip64_end + locator + end)
    with pytest.raises(CheckpointError, match="lists 1000000000 members"):
        nnctl.checkpoint.read_npz(path)


def test_init_weights_bomb_is_not_inflated(server, trained, tmp_path, zeros):
    """--init-weights reads a plain npz only up to the model's sizes."""
    weights = tmp_path / "init.npz"
    np.savez(weights, **{k: v for k, v in read_pair(trained, "last")[0].items()
                         if k.startswith("layers.")})
    members = members_of(weights)
    data, crc, size = zeros.member(npy_header("<f4", (BOMB_SIZE // 4,)))
    members[0] = [members[0][0], data, crc, size, zipfile.ZIP_DEFLATED, size]
    write_zip(weights, members)
    result = server.run("train", trained.parent.parent / "iris.yaml", "--runs-dir",
                        tmp_path / "runs", "--quiet", "--init-weights", weights)
    assert_refused(result, str(weights), "not inflated")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---- read-only disks --------------------------------------------------------------------------------

def can_mount() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / / 2>/dev/null"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.parametrize("where", ["folder-mode-555", "parent-is-a-file", "read-only-mount"])
def test_predict_into_an_unwritable_place_exits_2(server, trained, tmp_path, where):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "predictions.csv"
    if where == "folder-mode-555":
        out_dir.chmod(0o555)
        if os.access(out_dir, os.W_OK):
            out_dir.chmod(0o755)
            pytest.skip("running as root: mode 0o555 does not stop writes (the other two "
                        "cases fail open and unlink as a non-root user's write would)")
        result = server.run("predict", trained, IRIS, "-o", target)
        out_dir.chmod(0o755)
        assert_refused(result, str(target), "cannot write", "Permission denied")
    elif where == "parent-is-a-file":
        (out_dir / "file").write_text("a file, not a folder")
        target = out_dir / "file" / "predictions.csv"
        result = server.run("predict", trained, IRIS, "-o", target)
        assert_refused(result, str(target), "cannot write", "Not a directory")
    else:
        if not can_mount():
            pytest.skip("no mount namespaces here (unshare -m and a bind mount need "
                        "CAP_SYS_ADMIN)")
        script = (f'mount --bind "{out_dir}" "{out_dir}" && '
                  f'mount -o remount,bind,ro "{out_dir}" && '
                  f'exec "{sys.executable}" -m nnctl.cli predict "{trained}" "{IRIS}" '
                  f'-o "{target}"')
        result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                                text=True, env=subprocess_env(), timeout=TIMEOUT)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        assert f"{target}: cannot write (Read-only file system)" in result.stderr
    assert not target.exists() and temp_files(out_dir) == []


def test_atomic_write_reports_the_write_error_when_the_cleanup_fails_too(tmp_path, monkeypatch):
    """The disk went read-only after the temp file was made: the write fails, and so does the
    removal of the temp file. The write's error is the one reported; the old file stays."""
    target = tmp_path / "last.json"
    target.write_bytes(b"old")
    real_unlink = os.unlink

    def failing_write(f):
        f.write(b"new, half")
        raise OSError(errno.EROFS, "Read-only file system")

    def unlink(path, *args, **kwargs):
        if ".tmp-" in str(path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(UserError, match=r"last\.json: cannot write \(Read-only file system\)"):
        atomic_write(target, failing_write)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"


def test_disk_going_read_only_mid_run_exits_2_and_keeps_the_checkpoints(server, tmp_path):
    """The run's checkpoints folder becomes read-only (a bind mount of its own, remounted
    read-only) while it trains: the next checkpoint cannot be written, the error says so
    (exit 2), and the checkpoints written before still load.

    Only the checkpoints folder: the run directory holds the lock file open for writing, and
    Linux refuses to remount a mount that has a file open for writing read-only (a disk that
    fails is remounted read-only by the kernel regardless)."""
    if not can_mount():
        pytest.skip("no mount namespaces here (unshare -m and a bind mount need CAP_SYS_ADMIN)")
    config = tmp_path / "iris.yaml"
    config.write_text(tiny_iris_config(400).replace(  # a checkpoint every epoch
        "batch_size: 16", "batch_size: 1, checkpoint: {every_seconds: 0}"))
    runs = tmp_path / "runs"
    script = f"""
"{sys.executable}" -m nnctl.cli train "{config}" --runs-dir "{runs}" --quiet &
pid=$!
until [ -e "$(echo "{runs}"/*/checkpoints/epoch-3.json)" ]; do sleep 0.01; done
folder=$(echo "{runs}"/*/checkpoints)
mount --bind "$folder" "$folder" || {{ kill $pid; exit 97; }}
until mount -o remount,bind,ro "$folder" 2>/dev/null; do sleep 0.002; done
wait $pid
echo "exit=$?"
"""
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                            text=True, env=subprocess_env(), timeout=120)
    assert "exit=2" in result.stdout, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "cannot write (Read-only file system)" in result.stderr, result.stderr
    (run_dir,) = runs.iterdir()
    last = load_checkpoint(run_dir / "checkpoints", "last")[1]
    assert last["epoch"] >= 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "Read-only file system" in summary["message"]
    assert_ok(server.run("eval", run_dir, "--checkpoint", "last"))
    assert_ok(server.run("eval", run_dir))


# ---- one process at a time in a run directory --------------------------------------------------

def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def resumed_lines(run: Path) -> int:
    return (run / "train.log").read_text().count("resumed from epoch")


def test_two_resumes_of_one_run_at_once(server, run):
    mark_interrupted(run, epochs=100)  # a second or so of training from epoch 3
    first = server.start("train", "--resume", run, "--quiet")
    assert wait_for(lambda: resumed_lines(run) == 1), "the first resume did not start"
    log_before = (run / "train.log").read_text()
    second = server.run("train", "--resume", run, "--quiet")
    assert_refused(second, f"{run}: in use by another nnctl process (pid {first})")
    assert second.stdout == ""
    assert (run / "train.log").read_text().startswith(log_before)
    done = server.wait(first)
    assert_ok(done)
    assert resumed_lines(run) == 1
    log = (run / "train.log").read_text()
    assert log.count("epoch 4 ") == 1 and "completed after 100 epochs" in log
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    MEASURED["lock"] = (f"second resume refused in {second.seconds:.2f} s while the first "
                        f"trained for {done.seconds:.1f} s")


def test_a_resume_of_a_run_still_training_is_refused(server, trained, tmp_path):
    config = tmp_path / "iris.yaml"
    config.write_text(tiny_iris_config(100))
    runs = tmp_path / "runs"
    training = server.start("train", config, "--runs-dir", runs, "--quiet")
    assert wait_for(lambda: any(runs.glob("*/metrics.csv")))  # training, no checkpoint yet
    (run_dir,) = runs.iterdir()
    resume = server.run("train", "--resume", run_dir, "--quiet")
    assert_refused(resume, f"{run_dir}: in use by another nnctl process (pid {training})")
    assert_ok(server.wait(training))
    assert resumed_lines(run_dir) == 0
    assert (run_dir / "train.log").read_text().count("started:") == 1


def test_the_lock_of_a_killed_process_is_released(server, run):
    mark_interrupted(run, epochs=100)
    victim = server.start("train", "--resume", run, "--quiet")
    assert wait_for(lambda: (run / "metrics.csv").read_text().count("\n") > 6)  # epoch 6
    os.kill(victim, signal.SIGKILL)
    killed = server.wait(victim)
    assert killed.signal == signal.SIGKILL
    mark_interrupted(run)  # the kill left no summary, or the one before
    assert_ok(server.run("train", "--resume", run, "--quiet"))
    assert resumed_lines(run) == 2
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_the_lock_file_is_hidden_and_listing_ignores_it(trained):
    """`nnctl runs list` and `runs show` work on a run that holds a lock file; the file is a
    hidden one that the run's own file lists leave alone."""
    from fault_helpers import cli

    assert (trained / LOCK_FILE).is_file()
    assert LOCK_FILE.startswith(".")
    listed = cli("runs", "list", "--runs-dir", trained.parent, "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert [row["run"] for row in json.loads(listed.stdout)] == [trained.name]
    shown = cli("runs", "show", trained)
    assert shown.exit_code == 0, shown.output


def test_lock_run_in_process(tmp_path):
    """The lock names its holder, refuses a second taker (another process), and is free
    again once released. (Not read here while held: a POSIX lock is released when its
    process closes any descriptor of the file.)"""
    held = lock_run(tmp_path)
    probe = (f"import sys; sys.path.insert(0, {str(Path(nnctl.__file__).parents[1])!r})\n"
             "from nnctl.locking import lock_run\n"
             "from nnctl.errors import UserError\n"
             f"try:\n    lock_run({str(tmp_path)!r})\nexcept UserError as e:\n    print(e)\n"
             "else:\n    print('taken')\n")
    other = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           timeout=60)
    assert f"in use by another nnctl process (pid {os.getpid()})" in other.stdout, other
    held.release()
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    other = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           timeout=60)
    assert other.stdout.strip() == "taken", other


# ---- fuzzing the description -------------------------------------------------------------------

FUZZ = settings(deadline=None, database=None, print_blob=True, max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.integers(-3, 10)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
           | st.sampled_from(["float32", "float64", "classification", "regression", "binary",
                              "standard", "none", "numeric", "categorical", "embedding",
                              "setosa", "sepal_length", "species", "", "0"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6) | st.sampled_from(
                          ["type", "name", "shape", "dtype", "best", "epoch"]), inner,
                          max_size=3), max_leaves=8)


def alike(value) -> st.SearchStrategy:
    """Values of the same kind as `value`: near misses, the ones a schema must tell apart."""
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, int):
        return (st.integers(-3, 3).map(lambda d: value + d) | st.integers(-2**64, 2**64)
                | st.sampled_from([-1, 0, 2**31, 2**53 + 1, 2**63, 2**64 - 1]))
    if isinstance(value, float):
        return (st.floats(allow_nan=True, allow_infinity=True)
                | st.sampled_from([0.0, -value, value * 1e300, 1e-320]))
    if isinstance(value, str):
        return st.text(max_size=8) | st.sampled_from(
            ["float64", "regression", "binary", "minmax", "none", "categorical", "datetime",
             "embedding", "virginica", "petal_width", value + " ", value.upper()])
    if isinstance(value, list) and value:
        return st.sampled_from([value[1:], value[:-1], value + value[-1:], value[::-1], []])
    if isinstance(value, dict) and value:
        return st.sampled_from(sorted(value)).map(
            lambda k: {key: v for key, v in value.items() if key != k})
    return VALUES


def spots(node, path=()):
    """(path, container, key) of every value inside a description."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else []
    for key, value in items:
        found.append((path + (key,), node, key))
        found += spots(value, path + (key,))
    return found


def dump(meta) -> str:
    """JSON as a bad writer could make it: NaN and Infinity where the floats are."""
    return json.dumps(meta, indent=1, allow_nan=True)


@pytest.fixture(scope="module")
def fuzz_run(trained, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    copy_dir = folder / trained.name
    shutil.copytree(trained, copy_dir)
    mark_interrupted(copy_dir)
    return copy_dir


def test_arbitrary_values_in_a_description_raise_only_checkpoint_errors(fuzz_run, trained):
    from nnctl.api import check_resume_meta, prepare, _restore
    from nnctl.config import load_config
    from nnctl.runs import RunRecorder

    import pandas as pd

    arrays, original = read_pair(trained, "last")
    session = prepare(load_config(fuzz_run / "config.yaml"))
    recorder = RunRecorder(fuzz_run, session.data.preprocessing.to_dict())
    rows = pd.read_csv(IRIS).head(5)
    folder = fuzz_run / "checkpoints"
    counts: Counter = Counter()

    @FUZZ
    @given(data=st.data())
    def run(data):
        meta = copy.deepcopy(original)
        for _ in range(data.draw(st.integers(1, 2), label="changes")):
            where = spots(meta)
            outside = [spot for spot in where if spot[0][0] != "arrays"]
            _, parent, key = data.draw(st.sampled_from(
                outside if outside and data.draw(st.integers(0, 4)) else where), label="spot")
            kind = data.draw(st.sampled_from(["like"] * 5 + ["any", "delete", "add"]),
                             label="kind")
            if kind == "like":
                parent[key] = data.draw(alike(parent[key]), label="value")
            elif kind == "any":
                parent[key] = data.draw(VALUES, label="value")
            elif kind == "delete":
                del parent[key]
            elif isinstance(parent, dict):
                parent[data.draw(st.text(max_size=6), label="new key")] = data.draw(VALUES)
            else:
                parent.append(data.draw(VALUES, label="appended"))
        write_pair(fuzz_run, "last", arrays, dump(meta))
        outcome = []
        for call in [
            lambda: load_checkpoint(folder, "last"),
            lambda: nnctl.load(fuzz_run, "last").predict(rows),
            lambda: _restore(session, recorder, *load_checkpoint(
                folder, "last", lambda m: check_resume_meta(m, session, fuzz_run))),
        ]:
            try:
                call()
                outcome.append("ok")
            except UserError as exc:
                assert exc.problems and all(isinstance(p, str) and p.strip()
                                            for p in exc.problems), exc.problems
                if isinstance(exc, CheckpointError):
                    assert str(folder) in exc.problems[0], exc.problems
                    outcome.append("refused")
                else:  # e.g. a scaler whose tiny spread overflows float32 on the rows
                    outcome.append("data error")
        counts[tuple(outcome)] += 1

    run()
    print(f"\nfuzzed descriptions (load_checkpoint, nnctl.load, resume): {dict(counts)}")
    assert sum(counts.values()) >= 100
    assert sum(n for k, n in counts.items() if k[1] == "refused") > 50
