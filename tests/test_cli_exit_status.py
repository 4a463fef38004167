"""Exit statuses never say "clean" when the run was not (issue 16), each checked on the installed
``matcher`` command run as a subprocess:

* a PATH that does not exist or cannot be read is a usage error (2) before any work;
* a closed standard output (``matcher scan ... | head``) ends with 141, never 0, with no traceback;
* options go anywhere after the subcommand's name, ``-v`` and ``--quiet`` too, in every command;
* Ctrl-C ends a scan with 130 and one line saying how to resume (the resumed scan completes the
  report), other commands with 130 and one plain line, and no process prints a traceback;
* ``--resume`` without a journal says so;
* an ``--output`` (or a scan's manifest) that exists is refused without ``--force``;
* the summary's last line says what the exit status means;
* the README, the module docstring and each command's help list the same statuses.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fixtures import encode, scene
from matcher.scan.journal import read_journal
from tests.conftest import ROOT, matcher_command, run_matcher

#: The statuses the README, ``matcher --help`` texts and the module docstring document.
STATUSES = {0, 1, 2, 130, 141}


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict[str, Path]:
    """An index of two known images, evidence holding a copy of each and an unrelated image, and a
    query hash of the first known image."""
    root = tmp_path_factory.mktemp("exit")
    known, evidence, clean = root / "known", root / "evidence", root / "clean"
    for folder in (known, evidence, clean):
        folder.mkdir()
    for seed in (1, 2):
        (known / f"k{seed}.png").write_bytes(encode(scene(seed, 160, 120), "PNG"))
        (evidence / f"copy{seed}.jpg").write_bytes(encode(scene(seed, 160, 120), "JPEG", quality=85))
    (evidence / "other.png").write_bytes(encode(scene(9, 160, 120, "shapes"), "PNG"))
    (clean / "other.png").write_bytes(encode(scene(9, 160, 120, "shapes"), "PNG"))
    index = root / "index"
    assert run_matcher("index", "create", index).returncode == 0
    added = run_matcher("index", "add", index, known, "--list", "demo", "--no-views")
    assert added.returncode == 0, added.stderr
    hashed = run_matcher("hash", known / "k1.png", "--algorithms", "pdq")
    query = json.loads(hashed.stdout)["pdq"]
    (root / "query.txt").write_text(query + "\n")
    return {"root": root, "known": known, "evidence": evidence, "clean": clean, "index": index}


def query_hex(case: dict[str, Path]) -> str:
    return (case["root"] / "query.txt").read_text().strip()


def stderr_lines(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    return done.stderr.decode("utf-8", "replace").strip().splitlines()


def environment() -> dict[str, str]:
    """run_matcher's environment: the checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


# --------------------------------------------------------------------------------------------------
# A PATH that does not exist or cannot be read


@pytest.mark.parametrize("command", ["scan", "hash", "cluster"])
def test_a_missing_path_is_a_usage_error_before_any_work(case, tmp_path, command):
    report = tmp_path / "report.jsonl"
    args = [command, case["evidence"], tmp_path / "no" / "such", "--output", report]
    if command == "scan":
        args += ["--index", case["index"]]
    done = run_matcher(*args)
    assert done.returncode == 2, done.stderr
    assert stderr_lines(done)[-1] == f"matcher: error: PATH {str(tmp_path / 'no' / 'such')!r} does not exist"
    assert list(tmp_path.iterdir()) == []  # no report, journal or manifest: nothing was done


@pytest.mark.parametrize("command", ["scan", "hash", "cluster"])
def test_a_path_that_cannot_be_read_is_a_usage_error(case, tmp_path, command):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)  # stat fails: too many levels of symbolic links, even for root
    args = [command, loop, *(["--index", case["index"]] if command == "scan" else [])]
    done = run_matcher(*args)
    assert done.returncode == 2, done.stderr
    assert stderr_lines(done)[-1].startswith(f"matcher: error: PATH {str(loop)!r} cannot be read: ")
    assert done.stdout == b""
    if os.geteuid() != 0:  # permissions bind only other users than root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0)
        try:
            done = run_matcher(*args[:1], locked, *args[2:])
        finally:
            locked.chmod(0o700)
        assert done.returncode == 2 and b"cannot be read: permission denied" in done.stderr


# --------------------------------------------------------------------------------------------------
# Broken pipe


def run_into_closed_pipe(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    """Run matcher with standard output a pipe nobody reads any more (``| head`` that has exited)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [matcher_command(), *map(str, args)],
            stdout=write,
            stderr=subprocess.PIPE,
            env=environment(),
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("command", ["scan", "hash", "cluster", "index query", "index export"])
def test_a_closed_standard_output_is_141_never_0_and_no_traceback(case, command):
    args = {
        "scan": ["scan", case["evidence"], "--index", case["index"], "-j", "1"],
        "hash": ["hash", case["evidence"]],
        "cluster": ["cluster", case["evidence"], "-j", "1"],
        "index query": ["index", "query", case["index"], query_hex(case)],
        "index export": ["index", "export", case["index"]],
    }[command]
    done = run_into_closed_pipe(*args)
    err = done.stderr.decode()
    assert done.returncode == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert (
        err.strip().splitlines()[-1] == "matcher: standard output was closed early; the output is incomplete (exit 141)"
    )


def test_a_scan_cut_short_by_head_never_exits_0(case, tmp_path):
    """The shell pipeline a user types: the scan's status is 141 or, when everything was written
    before ``head`` left, 1 (it matched); never 0."""
    evidence = tmp_path / "evidence"
    shutil.copytree(case["evidence"], evidence)
    for i in range(200):  # more records than a pipe holds
        shutil.copy(case["evidence"] / "copy1.jpg", evidence / f"n{i:03d}.jpg")
    script = (
        f"{shlex.join([matcher_command(), 'scan', str(evidence), '--index', str(case['index']), '-j', '1'])} | head -3"
    )
    script += '; echo "status ${PIPESTATUS[0]}" >&2'
    done = subprocess.run(["bash", "-c", script], capture_output=True, env=environment(), timeout=120, check=False)
    assert len(done.stdout.splitlines()) == 3
    assert done.stderr.decode().strip().splitlines()[-1] == "status 141", done.stderr.decode()
    assert b"Traceback" not in done.stderr


# --------------------------------------------------------------------------------------------------
# Options anywhere


def test_index_query_takes_nearest_before_the_hash(case):
    before = run_matcher("index", "query", case["index"], "--nearest", "2", query_hex(case))
    after = run_matcher("index", "query", case["index"], query_hex(case), "--nearest", "2")
    assert before.returncode == after.returncode == 1, before.stderr
    assert before.stdout == after.stdout
    assert len(json.loads(before.stdout)["matches"]) == 2


def intermixed_commands(case: dict[str, Path], tmp_path: Path) -> dict[str, tuple[list[object], int]]:
    """For every subcommand, a command line with an option between its positionals (or before the
    first), ``-v`` and ``--quiet`` after its name; and the exit status it must end with."""
    ev, ix, known = case["evidence"], case["index"], case["known"]
    copy = tmp_path / "copy"
    return {
        "hash": (["hash", known / "k1.png", "-a", "pdq", "-v", known / "k2.png", "--quiet"], 0),
        "scan": (["scan", ev / "copy1.jpg", "--index", ix, "-v", ev / "other.png", "--quiet", "-j", "1"], 1),
        "cluster": (["cluster", ev / "copy1.jpg", "--min-size", "1", ev / "copy2.jpg", "-v", "-q", "-j", "1"], 0),
        "compare": (["compare", known / "k1.png", "--json", ev / "copy1.jpg", "-v", "--quiet"], 1),
        "index create": (["index", "create", "-a", "pdq", tmp_path / "new", "-v", "--quiet"], 0),
        "index add": (["index", "add", copy, "--list", "x", known, "--no-views", "-v", "--quiet"], 0),
        "index remove": (["index", "remove", copy, "-v", "--list", "demo", "--quiet"], 0),
        "index info": (["index", "info", "--json", ix, "-v", "--quiet"], 0),
        "index query": (["index", "query", ix, "--max-distance", "31", query_hex(case), "-v", "--quiet"], 1),
        "index export": (["index", "export", "--list", "demo", ix, "-v", "--quiet"], 0),
        "index split": (["index", "split", ix, "--shards", "2", tmp_path / "shards", "-v", "--quiet"], 0),
    }


@pytest.mark.parametrize(
    "command",
    [
        "hash",
        "scan",
        "cluster",
        "compare",
        "index create",
        "index add",
        "index remove",
        "index info",
        "index query",
        "index export",
        "index split",
    ],
)
def test_options_go_anywhere_in_every_command(case, tmp_path, command):
    if command in ("index add", "index remove"):
        shutil.copytree(case["index"], tmp_path / "copy")
    args, status = intermixed_commands(case, tmp_path)[command]
    done = run_matcher(*args)
    assert done.returncode == status, done.stderr
    assert b"unrecognized arguments" not in done.stderr


def test_verbose_and_quiet_before_the_subcommand_count_too(case):
    quiet = run_matcher("--quiet", "scan", case["evidence"], "--index", case["index"], "-j", "1")
    assert quiet.returncode == 1 and quiet.stderr == b"", quiet.stderr
    verbose = run_matcher("-v", "scan", case["evidence"], "--index", case["index"], "-q", "-j", "1")
    assert verbose.returncode == 1 and b"opened index" in verbose.stderr


# --------------------------------------------------------------------------------------------------
# Ctrl-C


def many_files(folder: Path, count: int) -> None:
    """``count`` small images (copies of three), enough that a scan is still running when interrupted."""
    folder.mkdir()
    sources = [encode(scene(seed, 96, 72, "shapes"), "PNG") for seed in (3, 4)]
    sources.append(encode(scene(1, 160, 120), "JPEG", quality=85))  # a copy of a known image: a match
    for i in range(count):
        (folder / f"f{i:04d}.png").write_bytes(sources[i % 3])


def workers_ready(driver: int) -> bool:
    """Whether two pool workers of the command ``driver`` (started in its own session) have run
    their initializer (which starts a thread: the driver watch): an interrupt then finds the pool
    up, not half started."""
    ready = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
                session = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[3])
            except (OSError, ValueError):
                continue
            facts = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            parent, threads = int(facts["PPid"]), int(facts["Threads"])
            if session == driver and parent not in (driver, 1) and threads >= 2:  # a forkserver child
                ready += 1
    return ready >= 2


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def sigint_as_in_a_terminal() -> None:
    """Run in the child before it starts: SIGINT at its default, as in a terminal's foreground job.
    A test run started in the background (``cmd &`` in a script) inherits SIGINT ignored, and a
    Python started so never raises ``KeyboardInterrupt``: the commands would not be interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group (workers included)."""
    os.killpg(process.pid, signal.SIGINT)
    return process.communicate(timeout=120)


def test_ctrl_c_ends_a_scan_with_130_and_the_resume_command_which_completes_it(case, tmp_path):
    evidence = tmp_path / "evidence"
    many_files(evidence, 80)
    report = tmp_path / "report.jsonl"
    journal = Path(str(report) + ".partial")
    args = ["scan", str(evidence), "--index", str(case["index"]), "--output", str(report), "--workers", "2"]
    process = subprocess.Popen(
        [matcher_command(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        start_new_session=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    # Two entries journaled: the scan is under way and far from done (78 files to go); its workers are
    # starting or scanning, either way they get the SIGINT too.
    wait_for(lambda: journal.exists() and journal.read_bytes().count(b"\n") >= 3, "two journaled entries")
    out, err = interrupt(process)
    text = err.decode()
    assert process.returncode == 130, text
    assert "Traceback" not in text and "Exception" not in text
    line = text.strip().splitlines()[-1]
    found = re.fullmatch(
        r"matcher scan: interrupted after (\d+) files \(exit 130\); the journal (.+) keeps them; to continue: (.+)",
        line,
    )
    assert found, line
    state = read_journal(str(journal))
    assert state is not None and int(found[1]) == state.entries and 2 <= state.entries < 80
    assert found[2] == str(journal) and not report.exists()
    command = shlex.split(found[3])
    assert command == ["matcher", *args, "--resume"]
    resumed = run_matcher(*command[1:])
    assert resumed.returncode == 1, resumed.stderr
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert [r["path"] for r in records] == [str(evidence / f"f{i:04d}.png") for i in range(80)]
    assert [r["status"] for r in records] == (["no_match", "no_match", "match"] * 27)[:80]
    assert not journal.exists()


def test_ctrl_c_of_a_dask_scan_is_130_and_no_worker_prints_a_traceback(case, tmp_path):
    """The local Dask cluster's worker processes get the terminal's SIGINT too; the scan stops them."""
    evidence = tmp_path / "evidence"
    many_files(evidence, 80)
    report = tmp_path / "report.jsonl"
    journal = Path(str(report) + ".partial")
    args = ["scan", str(evidence), "--index", str(case["index"]), "--output", str(report)]
    args += ["--engine", "dask", "--workers", "2"]
    process = subprocess.Popen(
        [matcher_command(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        start_new_session=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    wait_for(lambda: journal.exists() and journal.read_bytes().count(b"\n") >= 3, "two journaled entries")
    out, err = interrupt(process)
    text = err.decode()
    assert process.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert text.strip().splitlines()[-1].endswith(f"to continue: {shlex.join(['matcher', *args, '--resume'])}")


def test_ctrl_c_of_a_scan_to_standard_output_says_nothing_is_kept(case, tmp_path):
    evidence = tmp_path / "evidence"
    many_files(evidence, 80)
    process = subprocess.Popen(
        [matcher_command(), "scan", str(evidence), "--index", str(case["index"]), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        start_new_session=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    assert process.stdout is not None
    process.stdout.readline()  # the first record: the scan is under way
    out, err = interrupt(process)
    assert process.returncode == 130, err
    assert b"Traceback" not in err
    assert re.fullmatch(
        r"matcher scan: interrupted after \d+ files? \(exit 130\); a scan to standard output keeps no journal: "
        r"its output is incomplete",
        err.decode().strip().splitlines()[-1],
    )


@pytest.mark.parametrize("command", ["hash", "cluster"])
def test_ctrl_c_of_other_commands_is_130_and_one_plain_line(tmp_path, command):
    evidence = tmp_path / "evidence"
    many_files(evidence, 600)  # the pool is up before the interrupt, with work left (cluster)
    args = [command, str(evidence)] + (["--workers", "2"] if command == "cluster" else [])
    process = subprocess.Popen(
        [matcher_command(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        start_new_session=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    if command == "hash":
        assert process.stdout is not None
        process.stdout.readline()  # the first record: hashing is under way
    else:
        wait_for(lambda: workers_ready(process.pid), "the pool's workers")
    out, err = interrupt(process)
    assert process.returncode == 130, err
    assert err.decode().strip().splitlines() == [f"matcher {command}: interrupted (exit 130)"]


# --------------------------------------------------------------------------------------------------
# --resume without a journal; outputs that exist


def test_resume_without_a_journal_says_so_and_scans(case, tmp_path):
    report = tmp_path / "report.jsonl"
    done = run_matcher("scan", case["evidence"], "--index", case["index"], "-o", report, "--resume", "-j", "1")
    assert done.returncode == 1, done.stderr
    assert f"matcher: no journal at {report}.partial; starting a new scan" in stderr_lines(done)
    assert len(report.read_text().splitlines()) == 3


def test_an_existing_scan_report_or_manifest_is_refused_without_force(case, tmp_path):
    report = tmp_path / "report.jsonl"
    scan = ["scan", case["evidence"], "--index", case["index"], "--output", report, "-j", "1"]
    assert run_matcher(*scan).returncode == 1
    first = report.read_bytes()
    manifest = Path(f"{report}.manifest.json")
    manifest_bytes = manifest.read_bytes()
    for extra in ([], ["--resume"]):  # --resume continues a journal; with none, it replaces nothing
        again = run_matcher(*scan, *extra)
        assert again.returncode == 2, again.stderr
        assert stderr_lines(again)[-1] == (
            f"matcher: error: output {str(report)!r} exists; matcher does not replace it: use --force to replace it"
        )
    assert report.read_bytes() == first and manifest.read_bytes() == manifest_bytes
    report.unlink()
    alone = run_matcher(*scan)
    assert alone.returncode == 2 and b"manifest" in alone.stderr and b"--force" in alone.stderr
    assert not report.exists() and manifest.read_bytes() == manifest_bytes
    forced = run_matcher(*scan, "--force")
    assert forced.returncode == 1, forced.stderr
    assert (
        report.exists() and json.loads(manifest.read_text())["started_at"] != json.loads(manifest_bytes)["started_at"]
    )


@pytest.mark.parametrize("command", ["hash", "cluster", "index query", "index export"])
def test_an_existing_output_is_refused_without_force(case, tmp_path, command):
    output = tmp_path / "out"
    output.write_text("the only copy\n")
    args = {
        "hash": ["hash", case["known"]],
        "cluster": ["cluster", case["known"], "-j", "1"],
        "index query": ["index", "query", case["index"], query_hex(case)],
        "index export": ["index", "export", case["index"]],
    }[command]
    refused = run_matcher(*args, "--output", output)
    assert refused.returncode == 2, refused.stderr
    assert stderr_lines(refused)[-1] == (
        f"matcher: error: output {str(output)!r} exists; matcher does not replace it: use --force to replace it"
    )
    assert output.read_text() == "the only copy\n"
    forced = run_matcher(*args, "--output", output, "--force")
    assert forced.returncode in (0, 1), forced.stderr
    assert output.read_text() != "the only copy\n"


def test_a_device_output_is_written_without_force(case):
    done = run_matcher("hash", case["known"], "--output", os.devnull)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------------------------------
# The summary's last line


def test_the_summary_ends_with_what_the_exit_status_means(case, tmp_path):
    matched = run_matcher("scan", case["evidence"], "--index", case["index"], "-o", tmp_path / "a.jsonl", "-j", "1")
    assert matched.returncode == 1
    assert stderr_lines(matched)[-1] == "exit 1: 2 files matched"
    clean = run_matcher("scan", case["clean"], "--index", case["index"], "-o", tmp_path / "b.jsonl", "-j", "1")
    assert clean.returncode == 0
    assert stderr_lines(clean)[-1] == "exit 0: nothing matched"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "cut.png").write_bytes(encode(scene(5, 64, 48), "PNG")[:200])
    broken = run_matcher("scan", tmp_path / "broken", "--index", case["index"], "-j", "1")
    assert broken.returncode == 0
    assert stderr_lines(broken)[-1] == (
        "exit 0: nothing matched (1 file could not be read or decoded: status error in the report)"
    )
    grouped = run_matcher("cluster", case["evidence"], "-j", "1")
    assert grouped.returncode == 0
    assert stderr_lines(grouped)[-1] == "exit 0: grouping completed (near-duplicate groups are not matches)"


# --------------------------------------------------------------------------------------------------
# Documentation


def test_readme_docstring_and_help_document_every_status():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    assert {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)} == STATUSES
    quick_start = readme.split("## ", 1)[0]
    assert "exit 1: 33 files matched" in quick_start
    import matcher.cli

    doc = matcher.cli.__doc__ or ""
    assert {int(code) for code in re.findall(r"^\* (\d+):", doc, re.MULTILINE)} == STATUSES
    for command, codes in (("scan", STATUSES), ("hash", STATUSES - {1}), ("cluster", STATUSES - {1})):
        text = run_matcher(command, "--help").stdout.decode()
        epilog = text.split("exit codes", 1)[1]
        assert {int(code) for code in re.findall(r"^  (\d+) ", epilog, re.MULTILINE)} == codes, command
