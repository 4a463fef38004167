"""The one read-and-hash pipeline: an entry is read once, decoded into frames, each frame into features.

Every command goes through here (``hash``, ``index add``, ``scan``, ``cluster``, ``compare``); they
differ only in the features they ask for (:class:`FeatureRequest`) and in what they do with them.
Nothing else in matcher reads or decodes files.

The steps
---------
1. **Read** (:func:`read_entry` for walked entries, :func:`read_source` for a path, stream or bytes):
   the file is opened read-only, never through a link, and read once; the same bytes give MD5,
   SHA-1 and SHA-256 and, for images and videos (type from magic bytes,
   :func:`matcher.imaging.sniff`), feed the decoder.
2. **Decode** (:func:`decode`): images and animations (:func:`matcher.imaging.iter_frames`,
   with the pixel and frame limits and JPEG draft decoding of :class:`HashOptions`), and videos
   (:func:`decode_video`: frames sampled in time as vPDQ samples them, :mod:`matcher.video`), one
   more decoder of frames, each with its frame number and timestamp.
3. **Frame features** (:func:`frame_features`): per frame and algorithm, the global hash, and as
   asked its dihedral variants, its known-side views (what images added to an index store) or its
   query-side views (what a scan searches). :class:`FrameFeatures` has room for a descriptor set with
   keypoint geometry (local features) and a timestamp (video frames).

One rule for what is not decoded, in every command
--------------------------------------------------
* An empty file is an **error** (``"empty file (0 bytes)"``): there is nothing to digest-match
  either.
* A file whose content is neither an image nor a video (whatever its name says;
  ``extension_mismatch`` flags a misleading name), or a video container without a video stream
  (note ``"no video stream (<type>); digests only"``), is **not an error**: it gets its digests,
  no perceptual hash, and the note ``"not an image (<type>); digests only"``. ``matcher hash``
  writes it in the ``note`` column, ``matcher scan`` gives it status ``no_match`` (or
  ``match``/``known_good`` on a digest match) with that note, ``matcher cluster`` lists it as
  ``skipped`` (there is nothing to group it by) with that note, and ``matcher compare`` refuses it
  (it compares images and videos) with a message saying so.
* An image over ``max_file_bytes`` is digested, not decoded: an **error** saying so. A video over
  it (a seized drive's multi-GB recording) is not held in memory but decoded from its file: once
  digested, the file is opened again read-only, as it was read (no link below the given path is
  followed), and decoded only if ``fstat`` shows the same device, inode, size and modification time
  as the read digested, before and after the decode (:func:`matcher.files.reopen_entry`); a file
  swapped or rewritten in between is an **error**, never decoded. The decoder holds at most
  :data:`matcher.video.HELD_PACKET_BYTES` of compressed packets (more: the file is demuxed twice),
  and the video limits (``--max-video-seconds``, the decode time budget, the pixel limit) bound the
  rest. A video read from a stream (standard input, an upload) stays bounded by ``max_file_bytes``.
* An image that cannot be decoded is an **error** with the decoder's reason; the frames decoded
  before a failure are kept, and the failure is an extra record naming the frame.
* Links, FIFOs, sockets and devices met in a walk are never opened: **skipped**, with a note saying
  what they are; a file swapped for one between the walk and the read is refused the same way.
* A file that changed while it was read (size or modification time) carries
  :data:`CHANGED_WHILE_READ` on each of its records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from . import files, imaging, local_features, video
from .algorithms import Algorithm, registry
from .digests import Digests
from .errors import (
    DecodeError,
    ImageTooLargeError,
    MatcherError,
    NotAFileError,
    UnsupportedFormatError,
    UsageError,
)
from .hashes import Hash
from .insets import Box, find_insets
from .variants import variant_hashes
from .views import REGION_VIEWS, full_scale_box, known_view_hashes, known_views_for, query_view_hashes

__all__ = [
    "CHANGED_WHILE_READ",
    "DEFAULT_ALGORITHMS",
    "HashOptions",
    "QueryViews",
    "FeatureRequest",
    "FrameFeatures",
    "Decoded",
    "EntryFeatures",
    "describe_error",
    "draft_size",
    "draft_check",
    "keep_if_image",
    "not_decoded",
    "with_changed",
    "frame_features",
    "decode",
    "decode_video",
    "read_entry",
    "read_source",
    "first_frame",
    "image_content",
    "region_views_searchable",
    "FrameImage",
    "read_frame_image",
]

log = logging.getLogger(__name__)

#: The algorithms a run hashes with when none are named.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("pdq",)
#: Said of a file whose size or modification time changed while it was read.
CHANGED_WHILE_READ = "file changed while it was read (size or modification time differ); values may not match it now"


# --------------------------------------------------------------------------------------------------
# What a run asks for, and what it gets


_DECODE_DEFAULTS = imaging.DecodeOptions()


@dataclass(frozen=True, slots=True)
class HashOptions:
    """How files are decoded and hashed.

    - ``max_pixels``: largest width x height decoded per frame; larger images get an error record.
    - ``max_frames``: frames hashed per animated or multi-page file (each record names its frame;
      ``frame_count`` tells how many the file has). Videos have their own bound on sampled frames,
      ``video.max_frames`` (none by default: a 20-minute video samples 1,200 frames at 1 fps).
    - ``apply_exif_orientation``: hash the image as displayed rather than as stored. Off by default:
      reference hash sets hash the stored pixels.
    - ``fast``: let JPEGs be decoded at reduced scale (1/2, 1/4, 1/8) when every chosen algorithm
      tolerates it. Each reduced frame is checked: its PDQ and the PDQ of the frame reduced once more
      must be within 2 bits, else it is decoded again at twice the resolution, in full if need be.
      Measured on 102 generated q90 JPEGs (3000x2000 to 4001x2999; smooth scenes, blurred noise,
      fine stripes, noisy scenes; PDQ quality >= 80), PDQ stayed within 4 bits of the full decode
      (mean 0.5); without the check the same images drifted up to 18 bits. Smooth scenes keep the
      1/4 decode (about 9x faster); fine texture and noise mostly fall back to a finer or full
      decode. Hashes are then not always bit-identical to other tools' full decodes. Off by default.
    - ``max_file_bytes``: image files larger than this are digested but not decoded (memory bound).
    - ``video``: how videos are sampled and bounded (:class:`matcher.video.VideoOptions`: frames
      per second, seconds sampled, decode time budget); ``max_pixels`` applies to their frames too.
    - ``views``: also compute every frame's known-side view hashes (:func:`matcher.views.known_view_hashes`:
      border-trimmed content, top/bottom 88 %, crops, small rotations) into :attr:`HashRecord.views`,
      as images added to an index need. Off by default (it costs about a dozen extra hashes a frame).
    - ``local``: also extract every frame's known-image local features
      (:data:`matcher.local_features.KNOWN_PARAMS`) into :attr:`HashRecord.local`, as images added to
      an index need. Off by default (about 5 ms a frame).
    """

    max_pixels: int = _DECODE_DEFAULTS.max_pixels
    max_frames: int = _DECODE_DEFAULTS.max_frames
    apply_exif_orientation: bool = False
    fast: bool = False
    max_file_bytes: int = 512 * 1024 * 1024
    views: bool = False
    video: video.VideoOptions = video.VideoOptions()
    local: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.video, video.VideoOptions):
            raise UsageError(f"video must be a VideoOptions, not {self.video!r}")
        if not isinstance(self.max_file_bytes, int) or self.max_file_bytes <= 0:
            raise UsageError(f"max_file_bytes must be a positive integer, not {self.max_file_bytes!r}")
        if not isinstance(self.views, bool):
            raise UsageError(f"views must be True or False, not {self.views!r}")
        if not isinstance(self.local, bool):
            raise UsageError(f"local must be True or False, not {self.local!r}")
        self.decode_options()  # validates the rest

    def decode_options(self) -> imaging.DecodeOptions:
        """The decoder's share of these options."""
        return imaging.DecodeOptions(
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            apply_exif_orientation=self.apply_exif_orientation,
        )


@dataclass(frozen=True, slots=True)
class QueryViews:
    """The query-side views a scan searches (see :func:`matcher.views.query_view_hashes`):
    ``rotations`` (the eight dihedral variants), ``trim_borders`` (the frame with its uniform
    borders trimmed), for the algorithms named in ``regions`` the top and bottom 88 %, and with
    ``insets`` the pictures embedded in the frame (:func:`matcher.insets.find_insets`: collage tiles,
    a picture pasted into a screenshot; looked for once per frame)."""

    rotations: bool = True
    trim_borders: bool = True
    regions: frozenset[str] = frozenset()
    insets: bool = True


@dataclass(frozen=True, slots=True)
class FeatureRequest:
    """The frame features a run asks for.

    - ``algorithms``: the global hash algorithms (registry names), in report order.
    - ``variants``: each hash's eight dihedral variants too (``FrameFeatures.variants``), as compare
      and cluster need; off: ``orig`` only.
    - ``known_views``: each frame's known-side views (``FrameFeatures.known_views``), as images added
      to an index need.
    - ``query_views``: each frame's query-side views (``FrameFeatures.variants``), as a scan needs;
      takes the place of ``variants``.
    - ``local``: each frame's local features (``FrameFeatures.descriptors``), extracted with these
      parameters (:data:`matcher.local_features.KNOWN_PARAMS` for images added to an index,
      :data:`~matcher.local_features.QUERY_PARAMS` for evidence); ``None``: none.
    - ``defer_local``: with ``local``, a single-frame image keeps its working image ready
      (``FrameFeatures.pending_local``, a few hundred kilobytes) instead of running the detector, for
      a caller that extracts only the frames it needs (the scan: those no digest and no global hash
      matched). Frames of animations and videos are extracted at once (a batch of them held as
      working images could take hundreds of megabytes).
    - ``local_video_frames``: with ``local``, sampled video frames get local features too (a scan
      looks for known images in them); off for a caller that compares videos only as wholes (cluster:
      a video is one member, linked by the vPDQ rule).
    - ``trim_video_frames``: each sampled video frame's hashes with its uniform borders trimmed too
      (``FrameFeatures.variants[name]["trim"]``, when it has borders), as cluster needs to link a
      letterboxed copy; a scan asks for them through ``query_views``.
    """

    algorithms: tuple[str, ...]
    variants: bool = False
    known_views: bool = False
    query_views: QueryViews | None = None
    local: local_features.ExtractParams | None = None
    defer_local: bool = False
    local_video_frames: bool = True
    trim_video_frames: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.algorithms, str) or not self.algorithms:
            raise UsageError(f"a feature request names its algorithms as a tuple, not {self.algorithms!r}")
        for name in self.algorithms:
            registry.get(name)  # UnknownAlgorithmError for a name not registered

    def resolved(self) -> tuple[Algorithm, ...]:
        """The requested algorithms."""
        return tuple(registry.get(name) for name in self.algorithms)


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """What one decoded frame gives.

    ``index`` is ``None`` for a still image, else the 0-based frame number; ``width``/``height`` the
    full-scale frame size; ``timestamp`` seconds into a video (``None`` for images). ``hashes`` maps
    each algorithm to the frame's own hash; ``variants`` (as asked) to ``{variant or query view:
    hash}`` (``orig`` included); ``known_views`` (as asked) to ``{view: hash}``. ``descriptors`` is
    the frame's local-feature set (keypoints with their geometry and binary descriptors) when a run
    asks for local features, else ``None``; ``pending_local`` holds them not yet extracted instead
    (``FeatureRequest.defer_local``): :meth:`local_set` gives either. ``local_insets``: with local
    features and inset query views, each inset of a still frame (a collage tile, a picture pasted
    into a screenshot: :func:`matcher.insets.find_insets`) as ``(box, features)``, ``box`` its
    ``(left, top, right, bottom)`` in the frame's full-scale pixels and ``features`` the local
    features of the inset cut out (in the inset's own pixels), extracted or pending as the frame's
    are: :meth:`inset_sets` gives them extracted. The scan searches them for a frame whose own
    local features found nothing (a tile holds a ninth of the frame's keypoints, cut out it has
    them all).
    """

    index: int | None
    width: int
    height: int
    hashes: Mapping[str, Hash]
    variants: Mapping[str, Mapping[str, Hash]] = field(default_factory=dict)
    known_views: Mapping[str, Mapping[str, Hash]] = field(default_factory=dict)
    timestamp: float | None = None
    descriptors: local_features.LocalFeatures | None = None
    pending_local: local_features.PendingFeatures | None = None
    local_insets: tuple[tuple[Box, local_features.LocalFeatures | local_features.PendingFeatures], ...] = ()

    def local_set(self) -> local_features.LocalFeatures | None:
        """The frame's local features: as extracted, else extracted now from ``pending_local``
        (each call extracts again: call once), else ``None``."""
        if self.descriptors is not None or self.pending_local is None:
            return self.descriptors
        return self.pending_local.extract()

    def inset_sets(self) -> list[tuple[Box, local_features.LocalFeatures]]:
        """Each inset's box and local features (see ``local_insets``), pending ones extracted now
        (each call extracts again: call once)."""
        return [
            (box, features.extract() if isinstance(features, local_features.PendingFeatures) else features)
            for box, features in self.local_insets
        ]

    def quality(self, algorithm: str) -> int | None:
        """The quality of the frame's ``algorithm`` hash (``None`` when it has none)."""
        value = self.hashes.get(algorithm)
        return None if value is None else value.quality


@dataclass(frozen=True, slots=True)
class Decoded:
    """A file's content decoded into frame features.

    ``width``/``height``/``frame_count`` are the header's (``None`` when it could not be read);
    ``frames`` the frames decoded and hashed, in order; ``error`` why decoding stopped (``None``: it
    did not), at frame ``failed_frame`` (``None`` for a still image or the file as a whole).
    """

    width: int | None
    height: int | None
    frame_count: int | None
    frames: tuple[FrameFeatures, ...]
    error: str | None
    failed_frame: int | None


@dataclass(frozen=True, slots=True)
class EntryFeatures:
    """One entry read once and decoded: everything a command builds its records from.

    ``path`` is the raw path (``None`` for a stream), ``name`` its text (bytes that are not UTF-8 as
    ``\\xNN``) and ``raw_hex`` the raw bytes in hex when not UTF-8. ``read`` says whether the content
    was read (``digests`` are then set); ``skipped`` marks an entry that is never opened (a link, FIFO,
    socket, device) with ``note`` saying what it is. ``note`` also says why a read file is not decoded
    (not an image: digests only). ``error`` is the entry's error (unreadable, empty, too large,
    undecodable, or the failure after some frames, at ``failed_frame``). ``changed``: the file changed
    while it was read; ``notes``: further facts (its size changed since the walk). ``noatime``:
    whether ``O_NOATIME`` applied to the read (``None``: not read).
    """

    path: bytes | None
    name: str | None
    raw_hex: str | None
    size: int | None = None
    digests: Digests | None = None
    media: imaging.MediaType | None = None
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    frames: tuple[FrameFeatures, ...] = ()
    error: str | None = None
    failed_frame: int | None = None
    note: str | None = None
    skipped: bool = False
    changed: bool = False
    notes: tuple[str, ...] = ()
    noatime: bool | None = None

    def with_decoded(self, decoded: Decoded) -> EntryFeatures:
        """This entry with what decoding its content gave (header facts, frames, the failure)."""
        return replace(
            self,
            width=decoded.width,
            height=decoded.height,
            frame_count=decoded.frame_count,
            frames=decoded.frames,
            error=decoded.error,
            failed_frame=decoded.failed_frame,
        )

    @property
    def read(self) -> bool:
        """Whether the entry's content was read (its digests are known)."""
        return self.digests is not None

    def file_facts(self) -> dict[str, Any]:
        """The file fields that hash, scan and cluster records share, as keyword arguments: path (and
        its raw bytes when not UTF-8), size, sniffed type and extension mismatch, digests, and the
        header's width, height and frame count."""
        digests = self.digests
        return {
            "path": self.name,
            "path_raw_hex": self.raw_hex,
            "size": self.size,
            "mime": self.media.mime if self.media else None,
            "extension_mismatch": imaging.extension_mismatch(self.name, self.media)
            if self.name and self.read
            else None,
            "md5": digests.md5 if digests else None,
            "sha1": digests.sha1 if digests else None,
            "sha256": digests.sha256 if digests else None,
            "width": self.width,
            "height": self.height,
            "frame_count": self.frame_count,
        }


# --------------------------------------------------------------------------------------------------
# Small rules every command shares


def describe_error(exc: BaseException) -> str:
    """The message a record carries for an exception met while reading, decoding or hashing."""
    if isinstance(exc, MatcherError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory while decoding or hashing"
    return f"unexpected {type(exc).__name__}: {exc}"


def draft_size(algorithms: Sequence[Algorithm], fast: bool) -> tuple[int, int] | None:
    """The reduced JPEG decode size every algorithm tolerates when ``fast`` is asked, or ``None`` for
    a full decode."""
    if not fast:
        return None
    sizes = [a.draft_size for a in algorithms]
    known = [size for size in sizes if size is not None]
    if not known or len(known) < len(sizes):
        return None
    return (max(width for width, _ in known), max(height for _, height in known))


def draft_check(algorithms: Sequence[Algorithm], fast: bool) -> imaging.DraftCheck | None:
    """The check a frame decoded at reduced scale must pass to be kept (see
    :attr:`~matcher.algorithms.base.Algorithm.draft_check_distance`), or ``None`` when there is
    nothing to check (a full decode, or no algorithm asks for a check)."""
    if draft_size(algorithms, fast) is None:
        return None
    checked = [(a, a.draft_check_distance) for a in algorithms if a.draft_check_distance is not None]
    if not checked:
        return None

    def agrees(fine: Image.Image, coarse: Image.Image, full_size: tuple[int, int]) -> bool:
        return all(a.hash_image(fine, full_size) - a.hash_image(coarse, full_size) <= limit for a, limit in checked)

    return agrees


def keep_if_image(head: bytes) -> bool:
    """Whether a file starting with ``head`` is an image or a video, so its bytes are kept for the decoder."""
    media = imaging.sniff(head)
    return media is not None and (media.is_image or media.is_video)


def not_decoded(
    result: files.ReadResult, media: imaging.MediaType | None, max_file_bytes: int
) -> tuple[str | None, str | None]:
    """Why a read file is not decoded, as ``(error, note)``; ``(None, None)`` when it is to be decoded
    (the rule of the module documentation)."""
    if result.size == 0:
        return "empty file (0 bytes)", None
    if media is None or not (media.is_image or media.is_video):
        return None, f"not an image ({media.mime if media else 'unrecognised data'}); digests only"
    if result.data is None:
        what = "video" if media.is_video else "image"
        return f"{what} file of {result.size} bytes is over the limit of {max_file_bytes} bytes; not decoded", None
    return None, None


def with_changed(error: str | None, changed: bool) -> str | None:
    """``error`` with :data:`CHANGED_WHILE_READ` added when the file ``changed`` while it was read."""
    if not changed:
        return error
    return CHANGED_WHILE_READ if error is None else f"{error}; {CHANGED_WHILE_READ}"


def region_views_searchable(algorithm: str, views: Mapping[str, Sequence[str]]) -> bool:
    """Whether an index holding ``views`` (``{algorithm: view tables}``) has a table that the region
    query views of ``algorithm`` are searched against (else computing them is wasted)."""
    held = set(views.get(algorithm, ()))
    return any(view in held for query in REGION_VIEWS for view in known_views_for(query))


# --------------------------------------------------------------------------------------------------
# Frames


def frame_features(
    image: Image.Image | None,
    request: FeatureRequest,
    full_size: tuple[int, int],
    index: int | None = None,
    timestamp: float | None = None,
    algorithms: Sequence[Algorithm] | None = None,
    pixels: np.ndarray | None = None,
) -> FrameFeatures:
    """The features ``request`` asks for of one decoded RGB frame.

    ``full_size`` is the frame's full-scale size (``image`` may be decoded at reduced scale).
    ``algorithms`` are the request's, when the caller has them resolved already. ``pixels``: the
    frame at full scale as an HxWx3 array, when the caller has it (a video frame); plain hashes are
    then computed from it (:meth:`~matcher.algorithms.base.Algorithm.hash_array`), and ``image``
    may be ``None`` (made from ``pixels`` only when a view, variant or local feature needs it).
    """
    algos = tuple(algorithms) if algorithms is not None else request.resolved()
    local = request.local if timestamp is None or request.local_video_frames else None
    picture = image
    if picture is None:
        if pixels is None:
            raise UsageError("frame_features needs an image or its pixels")
        if request.query_views is not None or request.variants or request.known_views or local is not None:
            picture = Image.fromarray(pixels)
    size = None if picture is None or picture.size == full_size else full_size  # decoded at reduced scale (draft)
    hashes: dict[str, Hash] = {}
    variants: dict[str, dict[str, Hash]] = {}
    known: dict[str, dict[str, Hash]] = {}
    query = request.query_views
    boxes = find_insets(_needed(picture)) if query is not None and query.insets and algos else ()
    for algorithm in algos:
        name = algorithm.name
        if query is not None:
            views = query_view_hashes(
                algorithm,
                _needed(picture),
                size,
                rotations=query.rotations,
                trim_borders=query.trim_borders,
                regions=name in query.regions,
                insets=boxes,
            )
            variants[name] = views
            hashes[name] = views["orig"]
        elif request.variants:
            variants[name] = variant_hashes(algorithm, _needed(picture), size, rotations=True)
            hashes[name] = variants[name]["orig"]
        elif pixels is not None and size is None:
            hashes[name] = algorithm.hash_array(pixels)
        else:
            hashes[name] = algorithm.hash_image(_needed(picture), full_size=size)
        if request.known_views:
            known[name] = known_view_hashes(algorithm, _needed(picture), size, main=hashes[name])
    descriptors: local_features.LocalFeatures | None = None
    pending: local_features.PendingFeatures | None = None
    insets: list[tuple[Box, local_features.LocalFeatures | local_features.PendingFeatures]] = []
    if local is not None:
        pending = local_features.prepare(_needed(picture), local)
        at_once = not request.defer_local or index is not None or timestamp is not None  # see FeatureRequest
        if at_once:
            descriptors, pending = pending.extract(), None
        if index is None and timestamp is None:  # a still image's insets too (not every frame of an animation)
            inset_local = local_features.inset_params(local)
            insets = [_inset_features(_needed(picture), box, full_size, inset_local, at_once) for box in boxes]
    return FrameFeatures(
        index,
        full_size[0],
        full_size[1],
        hashes,
        variants,
        known,
        timestamp,
        descriptors,
        pending_local=pending,
        local_insets=tuple(insets),
    )


def _inset_features(
    picture: Image.Image, box: Box, full_size: tuple[int, int], params: local_features.ExtractParams, at_once: bool
) -> tuple[Box, local_features.LocalFeatures | local_features.PendingFeatures]:
    """An inset's box in full-scale pixels (``box`` is in ``picture``'s, which may be decoded at
    reduced scale) and the local features of the inset cut out of ``picture``, in the inset's own
    full-scale pixels (extracted now when ``at_once``, else pending)."""
    full_box = full_scale_box(box, picture.size, full_size)
    pending = local_features.prepare(picture.crop(box), params)
    size = (full_box[2] - full_box[0], full_box[3] - full_box[1])
    pending = local_features.PendingFeatures(size[0], size[1], pending.work, pending.params)
    return full_box, pending.extract() if at_once else pending


def _needed(picture: Image.Image | None) -> Image.Image:
    """The frame's picture, which :func:`frame_features` has made when a feature needs it."""
    if picture is None:  # pragma: no cover - frame_features makes it whenever a branch needs it
        raise UsageError("frame_features needs the frame's image for this request")
    return picture


def _frames(
    source: bytes | Image.Image, algorithms: Sequence[Algorithm], options: HashOptions
) -> Generator[imaging.Frame, None, None]:
    """The decoder's frames of ``source`` under ``options`` (limits, EXIF orientation, ``fast`` with
    its draft size and check for ``algorithms``)."""
    return imaging.iter_frames(
        source,
        options.decode_options(),
        draft_size=draft_size(algorithms, options.fast),
        draft_check=draft_check(algorithms, options.fast),
    )


def decode(source: bytes | Image.Image, request: FeatureRequest, options: HashOptions) -> Decoded:
    """Decode ``source`` (a file's bytes, or a Pillow image) and compute every frame's features.

    ``options``: pixel and frame limits, EXIF orientation, ``fast``, video sampling. Videos (by
    magic bytes) go to :func:`decode_video`. Never raises for what is wrong with the content: a
    failure is the result's ``error`` (after the frames decoded before it), but for a video
    container without a video stream (:class:`matcher.video.NoVideoStreamError`, a note for the
    caller).
    """
    if not isinstance(source, Image.Image):
        media = imaging.sniff(source[:512])
        if media is not None and media.is_video:
            return decode_video(source, request, options)
    algorithms = request.resolved()
    decode_options = options.decode_options()
    width = height = frame_count = None
    try:
        if isinstance(source, Image.Image):
            width, height = source.width, source.height
            frame_count = int(getattr(source, "n_frames", 1) or 1)
        else:
            info, image = imaging.open_image(source, decode_options)
            image.close()
            width, height, frame_count = info.width, info.height, info.frame_count
        frames_iter = _frames(source, algorithms, options)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the result's error
        log.debug("cannot decode: %s", exc)
        return Decoded(width, height, frame_count, (), describe_error(exc), None)
    frames: list[FrameFeatures] = []
    current: int | None = None
    try:
        for frame in frames_iter:
            current = frame.index
            frames.append(
                frame_features(frame.image, request, (frame.width, frame.height), frame.index, algorithms=algorithms)
            )
    except Exception as exc:  # noqa: BLE001
        multi = frame_count not in (None, 1)
        failed = (0 if current is None else current + 1) if multi else None
        log.debug("cannot decode or hash frame %s: %s", failed, exc)
        return Decoded(width, height, frame_count, tuple(frames), describe_error(exc), failed)
    finally:
        frames_iter.close()
    if not frames:
        return Decoded(width, height, frame_count, (), "no frame could be decoded", None)
    return Decoded(width, height, frame_count, tuple(frames), None, None)


def decode_video(source: video.VideoSource, request: FeatureRequest, options: HashOptions) -> Decoded:
    """Decode the video ``source`` (its bytes, or its file open read-only: :func:`matcher.files.reopen_entry`)
    into the features of its sampled frames (:mod:`matcher.video`: frames chosen as vPDQ chooses
    them, each with its frame number and timestamp).

    A container without a video stream raises :class:`matcher.video.NoVideoStreamError` (the
    caller makes it a digests-only note); every other failure is the result's ``error``, after
    the frames sampled before it (``failed_frame`` is then the last sampled frame's number + 1).
    Video frames are not tried rotated or mirrored (a scan's or cluster's ``rotations``): a turned video is a
    display flag of its container, and eight hashes a sampled frame would cost more than decoding.
    """
    if request.query_views is not None and request.query_views.rotations:
        request = replace(request, query_views=replace(request.query_views, rotations=False))
    if request.variants:
        request = replace(request, variants=False)
    if request.trim_video_frames and request.query_views is None:
        request = replace(request, query_views=QueryViews(rotations=False, trim_borders=True, insets=False))
    algorithms = request.resolved()
    try:
        reader = video.VideoReader(source, options.video, options.max_pixels)
    except video.NoVideoStreamError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes the result's error
        return Decoded(None, None, None, (), describe_error(exc), None)
    info = reader.info
    frames: list[FrameFeatures] = []
    sampler = reader.frames()
    count = info.frame_count
    try:
        while True:
            try:
                sampled = next(sampler)
            except StopIteration as stop:
                count = stop.value.frame_count if stop.value is not None else count
                break
            frames.append(
                frame_features(
                    None,
                    request,
                    (sampled.width, sampled.height),
                    sampled.index,
                    sampled.timestamp,
                    algorithms=algorithms,
                    pixels=sampled.pixels,
                )
            )
    except Exception as exc:  # noqa: BLE001
        frames.sort(key=lambda f: f.index or 0)
        failed = (frames[-1].index or 0) + 1 if frames else 0
        log.debug("video: %s", exc)
        return Decoded(info.width, info.height, count, tuple(frames), describe_error(exc), failed)
    finally:
        sampler.close()
        reader.close()
    frames.sort(key=lambda f: f.index or 0)
    if not frames:
        return Decoded(info.width, info.height, count, (), "no frame could be decoded", None)
    return Decoded(info.width, info.height, count, tuple(frames), None, None)


# --------------------------------------------------------------------------------------------------
# Entries


def _from_read(
    base: EntryFeatures,
    result: files.ReadResult,
    request: FeatureRequest,
    options: HashOptions,
    reopen: Callable[[files.FileIdentity], BinaryIO] | None = None,
) -> EntryFeatures:
    """The features of a read file: the rule of the module documentation, then the decoder.
    ``reopen``: how to open the file again (:func:`matcher.files.reopen_entry`), for a video too
    large to hold in memory."""
    media = imaging.sniff(result.head)
    entry = replace(
        base, size=result.size, digests=result.digests, media=media, changed=result.changed, noatime=result.noatime
    )
    if media is not None and media.is_video and result.data is None and result.size > 0 and reopen is not None:
        return _from_video_file(entry, result, reopen, request, options)
    error, note = not_decoded(result, media, options.max_file_bytes)
    if error is not None or note is not None or result.data is None:
        return replace(entry, error=error, note=note)
    try:
        return entry.with_decoded(decode(result.data, request, options))
    except video.NoVideoStreamError:
        return replace(entry, note=f"no video stream ({media.mime if media else 'video'}); digests only")


def _from_video_file(
    entry: EntryFeatures,
    result: files.ReadResult,
    reopen: Callable[[files.FileIdentity], BinaryIO],
    request: FeatureRequest,
    options: HashOptions,
) -> EntryFeatures:
    """A video over ``max_file_bytes``, decoded from its file opened again read-only, refused (an
    error, no frames) unless it is still the file digested, before and after the decode."""
    identity = result.identity
    if identity is None or result.changed:
        return replace(entry, error="video changed while it was read; not decoded from the file")
    try:
        with reopen(identity) as stream:
            decoded = decode_video(stream, request, options)
            if files.identity_of(stream) != identity:
                return replace(entry, error="video changed while it was decoded from the file; its frames are not kept")
    except video.NoVideoStreamError:
        return replace(entry, note=f"no video stream ({entry.media.mime if entry.media else 'video'}); digests only")
    except MatcherError as exc:  # changed since the digests, or a link, FIFO or device swapped in: never read
        return replace(entry, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - nothing about one file may stop the batch
        log.debug("%s: %s", entry.name, exc, exc_info=True)
        return replace(entry, error=describe_error(exc))
    return entry.with_decoded(decoded)


def read_entry(entry: files.Entry, request: FeatureRequest, options: HashOptions) -> EntryFeatures:
    """Read one walked entry once and decode it into frame features. Never raises for a problem of the entry itself."""
    name, raw_hex = files.display_path(entry.path)
    base = EntryFeatures(entry.path, name, raw_hex, size=entry.size)
    if entry.kind != "file":
        skipped, message = entry.not_read()
        if skipped:
            return replace(base, skipped=True, note=message)
        return replace(base, error=message)
    try:  # never through a link: a file swapped for one after the walk is refused
        result = files.read_entry(entry, keep=keep_if_image, max_keep_bytes=options.max_file_bytes)
    except NotAFileError as exc:  # swapped for a link, FIFO or device after the walk: never read
        return replace(base, skipped=True, note=str(exc))
    except MatcherError as exc:
        return replace(base, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - nothing about one file may stop the batch
        log.debug("%s: %s", name, exc, exc_info=True)
        return replace(base, error=describe_error(exc))
    out = _from_read(base, result, request, options, lambda identity: files.reopen_entry(entry, identity))
    if entry.size is not None and result.size != entry.size:  # rewritten or replaced since the walk
        out = replace(
            out,
            notes=(
                f"size changed between listing ({entry.size} bytes) and reading "
                f"({result.size} bytes); the values are those of the content read",
            ),
        )
    return out


def read_source(
    read: Callable[..., files.ReadResult],
    source: str | bytes | os.PathLike[str] | BinaryIO,
    name: str | None,
    raw_hex: str | None,
    request: FeatureRequest,
    options: HashOptions,
    path: bytes | None = None,
) -> EntryFeatures:
    """Read ``source`` once with ``read`` (:func:`matcher.files.read_file` for a path,
    :func:`matcher.files.read_stream` for a stream) and decode it. A file that cannot be read gets
    the error; nothing else raises for a problem of the content. A video file (not a stream) over
    ``max_file_bytes`` is decoded from the file, opened again (:func:`matcher.files.reopen_file`)."""
    base = EntryFeatures(path, name, raw_hex)
    try:
        result = read(source, keep=keep_if_image, max_keep_bytes=options.max_file_bytes)
    except MatcherError as exc:
        return replace(base, error=str(exc))
    reopen: Callable[[files.FileIdentity], BinaryIO] | None = None
    if read is files.read_file and isinstance(source, (str, bytes, os.PathLike)):
        reopen = partial(files.reopen_file, source)
    return _from_read(base, result, request, options, reopen)


def image_content(result: files.ReadResult, name: str, max_file_bytes: int) -> bytes:
    """The bytes of a file read to be decoded as one image, or the error naming ``name`` that every
    single-image reader raises: :class:`~matcher.errors.UnsupportedFormatError` for an empty file
    or one that is not an image, :class:`~matcher.errors.ImageTooLargeError` beyond
    ``max_file_bytes``."""
    error, note = not_decoded(result, imaging.sniff(result.head), max_file_bytes)
    if result.size == 0:
        raise UnsupportedFormatError(f"{name}: empty file (0 bytes): not an image")
    if note is not None:
        raise UnsupportedFormatError(f"{name}: {note.split(';')[0]}")
    if error is not None or result.data is None:
        raise ImageTooLargeError(f"{name}: {error}")
    return result.data


def first_frame(
    value: str | os.PathLike[str] | Image.Image, name: str, request: FeatureRequest, options: HashOptions
) -> FrameFeatures:
    """The features of the first frame of an image file (read once, read-only) or a Pillow image, for
    commands that take one image and fail as a whole (``compare``).

    The same rule as every command applies, but as exceptions naming ``name``:
    :class:`~matcher.errors.FileReadError`/:class:`~matcher.errors.NotAFileError` for a file that
    cannot be read, :class:`~matcher.errors.UnsupportedFormatError` for an empty file or one that is
    not an image, :class:`~matcher.errors.ImageTooLargeError` for an image over ``max_file_bytes``,
    and a :class:`~matcher.errors.DecodeError` subclass for one that cannot be decoded.
    """
    source: bytes | Image.Image
    if isinstance(value, Image.Image):
        source = value
    else:
        result = files.read_file(value, keep=keep_if_image, max_keep_bytes=options.max_file_bytes)
        source = image_content(result, name, options.max_file_bytes)
    algorithms = request.resolved()
    frames = _frames(source, algorithms, options)
    try:
        frame = next(frames)
    except StopIteration:
        raise DecodeError(f"{name}: no frame could be decoded") from None
    except MatcherError as exc:
        if isinstance(exc, DecodeError):  # the decoder's messages say "image ...": name the file
            raise type(exc)(f"{name}: {exc}") from exc
        raise
    except Exception as exc:  # noqa: BLE001 - anything else the decoder raises is a decode failure
        raise DecodeError(f"{name}: cannot decode: {type(exc).__name__}: {exc}") from exc
    finally:
        frames.close()
    return frame_features(frame.image, request, (frame.width, frame.height), frame.index, algorithms=algorithms)


# --------------------------------------------------------------------------------------------------
# A frame to show (the review page's thumbnails)


@dataclass(frozen=True, slots=True)
class FrameImage:
    """One decoded frame of a file read for showing it: the content's ``digests`` (to check it is
    still the file a report describes) and the decoder's ``frame`` (RGB, full scale)."""

    digests: Digests
    frame: imaging.Frame


def read_frame_image(entry: files.Entry, frame: int | None, options: HashOptions) -> FrameImage:
    """Read the file a walk entry names once, read-only and following no link below its root
    (:func:`matcher.files.read_entry`), and decode its frame ``frame`` (``None``: a still image's
    only frame, else the first) under ``options``' limits, as every command reads and decodes.

    Raises, naming the file: :class:`~matcher.errors.FileReadError`/:class:`~matcher.errors.NotAFileError`
    for a file that cannot be read (or a link), :class:`~matcher.errors.UnsupportedFormatError` for
    an empty file or one that is not an image, :class:`~matcher.errors.ImageTooLargeError` beyond
    ``max_file_bytes``, and a :class:`~matcher.errors.DecodeError` for a frame that cannot be decoded.
    """
    name = files.display_path(entry.path)[0]
    result = files.read_entry(entry, keep=keep_if_image, max_keep_bytes=options.max_file_bytes)
    data = image_content(result, name, options.max_file_bytes)
    wanted = 0 if frame is None else frame
    decode_options = replace(options.decode_options(), max_frames=max(1, min(options.max_frames, wanted + 1)))
    frames = imaging.iter_frames(data, decode_options)
    try:
        for decoded in frames:
            if frame is None or decoded.index == frame:
                return FrameImage(result.digests, decoded)
    except MatcherError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything else the decoder raises is a decode failure
        raise DecodeError(f"{name}: cannot decode: {type(exc).__name__}: {exc}") from exc
    finally:
        frames.close()
    raise DecodeError(f"{name}: frame {frame} could not be decoded")
