"""The batch scan: walk evidence, read each file once, hash, match against a known index, report.

Two entry points:

* :func:`scan` — the pipeline as a generator of :class:`~matcher.scan_records.ScanRecord` values, in
  a deterministic order (the walk's order: path bytes, then frame), whatever the worker count.
* :func:`run_scan` — the driver behind ``matcher scan``: the same pipeline written to a report
  (JSON Lines, CSV or VICS) through a resumable journal, with a run manifest, returning a
  :class:`ScanSummary`.

What a file gets
----------------
Every entry the walk meets gets at least one record (one per frame for animated and multi-page
images). Each regular file is opened read-only (``O_NOATIME`` where permitted) and read once: the
same bytes give MD5, SHA-1 and SHA-256 for every file and, for images (type from magic bytes), the
decoded frames and their perceptual hashes. Nothing under an evidence path is ever written.

* A file that is not an image is not an error: digests only, status ``no_match`` (or ``match`` /
  ``known_good`` on a digest match), with a note saying what it is.
* An image that cannot be decoded gets status ``error`` with the reason, unless its digest matched
  (then ``match``, the error kept).
* Symbolic links inside the tree (never followed), FIFOs, sockets and devices (never opened) get
  status ``skipped`` and a note saying what they are; directories that cannot be listed and paths
  that do not exist get status ``error``.
* A file whose size or modification time changed while it was read gets
  :data:`~matcher.hashing.CHANGED_WHILE_READ` in the ``error`` of each of its records (one per
  frame, as usual; never an extra record); one whose size differs from the walk's (rewritten or
  replaced between listing and reading) gets a note saying so: its values are those of the content
  read. A file that vanished or cannot be opened (permission denied) gets an ``error`` record.

Matching
--------
Digests are looked up exactly (``md5``/``sha1``/``sha256`` matches: distance 0, no variant). Each
frame's perceptual hashes are searched within each algorithm's maximum distance (default: the
algorithm's ``default_max_distance``). With rotations (the default) the eight dihedral variants are
tried: for PDQ the exact variant hashes of :func:`matcher.algorithms.pdq.variant_hashes`, for the
imagehash family the hash of the frame transposed back. A variant name says how the evidence is
transformed relative to the known image (``rot90``: the evidence is the known image rotated 90°
counter-clockwise). A hash whose quality is below its algorithm's minimum (PDQ: 50) is not searched.
Each query view below (the variants, the trimmed frame, the regions) is gated on its *own* quality:
a flat caption band or a flat border region of a good frame is not searched, while the frame's other
views are. When the frame as it is fails the gate, the record gets the note ``"pdq not matched:
quality N below 50"`` (no view of sufficient quality either) or a note naming the views that were
searched all the same (e.g. the detailed content inside a flat border).

Edited copies (issue 6): a crop, a letterbox border or a caption banner moves the full-frame hash far
from the original's, but the same pixels of a fixed region hash the same. Each frame is therefore
hashed as a set of *query views* (:func:`matcher.views.query_view_hashes`): the eight dihedral
variants, the frame with its uniform borders trimmed (``trim``, ``trim+rot90``, ...; with
``trim_borders``, when a border is found) and its top and bottom 88 % (``top88``, ``bottom88``; with
``regions``, and only when the index holds such view tables). Each query view is searched against
the records' main hashes and against the view tables :func:`matcher.views.known_views_for` names
that the index holds (images added to an index get view hashes of crops, small rotations, the
trimmed content and the top/bottom 88 %; hash lists carry none). A match keeps the query view as
``variant`` and names the known record's view in ``view`` (``None``: its main hash). A pad-20 copy
of an image on a PDQ hash list thus matches as ``trim`` against the main hash; a 10 % crop of an
image added as a file matches as ``orig`` against its ``crop10`` view.

Each matched known record is reported once per record (frame): a digest match if there is one
(by the strongest digest: SHA-256, then SHA-1, then MD5), else the perceptual match with the smallest
distance as a fraction of the hash length (ties: the record's main hash before its views, the
scan's algorithm order, then ``orig`` before the other variants, the dihedral variants before
``trim*`` and the regions). Matches are listed digest matches first, then nearest first.

Known-good records (``extra["known_good"]`` true, e.g. NSRL) are not matches: a file whose digest
matches a known-good record and no other record gets status ``known_good``. Perceptual similarity to
a known-good record proves nothing and is only noted. Status precedence, highest first:
``match`` > ``known_good`` > ``error`` > ``skipped`` > ``no_match``.

Workers
-------
With ``workers > 1`` files are hashed and matched in a pool of worker processes made from a
``forkserver`` (``spawn`` where there is none) context — FAISS's OpenMP runtime and ``fork`` do not
mix — each of which opens the index once, read-only, and runs FAISS single-threaded. Work goes out in
chunks with a bounded number in flight and comes back in submission order, so memory does not grow
with the number of files and the output order never depends on the worker count. While the workers
start (about a second: interpreter, imports, index, compiled kernels) the calling process scans the
first entries itself, the pool taking over from the next entry once every worker is ready.
``workers=1`` (the library's default; ``matcher scan`` uses every CPU) runs in the calling process
and starts no process. A worker exits by itself once the calling process is gone (killed, even with
SIGKILL), so a killed scan leaves no process behind. In-process scanning sets FAISS to one thread for
its duration (process-wide; restored afterwards).

Engines
-------
``engine="local"`` (the default) is the process pool above. ``engine="dask"`` (``matcher scan
--engine dask [--scheduler ADDRESS]``) runs the same per-entry code as tasks on a Dask cluster
(:mod:`matcher.scan.engines.dask_engine`): this process walks the tree (metadata only; it never reads an evidence
file) and sends chunks of entries out; workers read, hash and match them, opening the index once per
worker process, and the results come back in walk order to the same journal and report code. The
records, the report and the summary are identical to a local scan's. Without a scheduler a local
cluster of ``workers`` processes is started on the loopback interface and closed at the end. Every
worker opens the index once before any chunk is sent; one that cannot, or dies doing so (out of
memory, say), stops the scan (exit 2, resumable) rather than turning its files into errors. A worker
that dies mid-task loses nothing: the scheduler runs its tasks again elsewhere and each task's result
is taken once; a chunk that keeps killing workers is scanned file by file, and a file that still kills
its worker gets an ``error`` record saying so. The engine is not a parameter of the report: a journal
written by one engine can be resumed with the other. The run manifest names the engine (and the
scheduler address, without credentials).

Resuming (``run_scan`` with an output file)
-------------------------------------------
Records are first appended to a journal, ``<output>.partial``: a header line with the scan's
parameters, then one JSON line per walked entry holding all of that entry's records, written and
flushed in one piece. When the walk is done the report is rendered from the journal into a temporary
file beside ``<output>``, fsynced and renamed over ``<output>``; the run manifest is written the same
way and the journal is removed. A scan killed at any moment (even ``SIGKILL``) and started again with
``resume=True`` keeps the journal's longest valid prefix (a torn last line is dropped), checks that
the parameters are the same and that the walk still gives exactly the journaled entries (each entry
line holds a running SHA-256 of the walked paths: an entry added, removed or renamed in the part
already scanned is refused with a clear message, never silently left out), and continues with the
next entry: the final report equals an uninterrupted run's. Each resuming run appends its start time
to the journal, and the run manifest lists every run's (``runs_started_at``). A journal of another
format version (:data:`~matcher.scan.journal.JOURNAL_VERSION`) is refused with a clear message. An
existing journal without ``resume`` is refused, as is a resume with different parameters; a
journal holding only a torn header (killed while it was created) is started again by a resume. A
write that fails (disk full, I/O error) stops the scan with a clear error and keeps the journal's
valid prefix, so that the same command with ``resume`` finishes it once space is freed; the report
and the run manifest are written to temporary files and renamed, so a failure leaves no partial report.

Exit codes of ``matcher scan``: 0 the scan completed and nothing matched; 1 it completed and at
least one record has status ``match``; 2 bad usage or a fatal error (index unreadable, output not
writable or inside an evidence path, journal present without ``--resume``, a failure of the index
itself while matching, a Dask worker that cannot open the index). Per-file errors are in the report
and do not change the code. A failure of the index (an exception from its search, digest or record
lookup: a FAISS error, out of memory) is never a per-file error: it stops the scan with an
:class:`~matcher.errors.IndexStoreError`, the journal kept so that ``--resume`` finishes the scan
once the cause is fixed.

Layout
------
:mod:`~matcher.scan.options` (the public values and the resolved configuration),
:mod:`~matcher.scan.scanner` (one entry: read, hash, hand to matching),
:mod:`~matcher.scan.matching` (match against an index, rank), :mod:`~matcher.scan.engines` (where
entries are scanned: in process, a pool, Dask), :mod:`~matcher.scan.journal` (resume) and
:mod:`~matcher.scan.driver` (:func:`scan`, :func:`run_scan`, the tally and the run manifest).
"""

from __future__ import annotations

from .driver import run_scan, scan
from .options import (
    ENGINES,
    EXIT_FATAL,
    EXIT_MATCH,
    EXIT_NO_MATCH,
    JOURNAL_SUFFIX,
    MANIFEST_SUFFIX,
    ScanOptions,
    ScanProgress,
    ScanSummary,
)

__all__ = [
    "ENGINES",
    "EXIT_FATAL",
    "EXIT_MATCH",
    "EXIT_NO_MATCH",
    "JOURNAL_SUFFIX",
    "MANIFEST_SUFFIX",
    "ScanOptions",
    "ScanProgress",
    "ScanSummary",
    "run_scan",
    "scan",
]
