"""Sample the frames of a video as vPDQ does, safely: the video decoder of the pipeline.

A video (MP4/MOV/3GP, Matroska/WebM, AVI: :attr:`matcher.imaging.MediaType.is_video`, by magic
bytes) is decoded with PyAV (FFmpeg) from the bytes the pipeline read once. Frames are chosen as the
reference vPDQ (``vpdq.computeHash``) chooses them, so that hashes line up frame for frame:

* the frame rate is the stream's average rate, else its base rate (``r_frame_rate``);
* a frame is sampled every ``int(seconds_per_hash * rate)`` frames (at least 1), counting decoded
  frames in presentation order from 0, where ``seconds_per_hash = 1 / fps``;
* a sampled frame's timestamp is its number divided by the rate, in float32 as vPDQ computes it;
* its pixels are the decoded picture converted to RGB24 by FFmpeg's swscale with area filtering
  (as vPDQ converts them), at the stream's width and height.

What makes it cheaper than decoding every frame: the packets are demuxed first (cheap) and numbered
by presentation order; only the packets that a sampled frame needs are sent to the decoder, from
the keyframe at or before it; the packets between that are not sampled are decoded with FFmpeg's
``skip_frame`` at ``NONREF`` (non-reference frames, which nothing else depends on, are skipped), and
nothing after a GOP's last sampled frame is decoded. Only sampled frames are converted to RGB. When
the packets do not allow that numbering (a packet without a presentation timestamp, duplicate
timestamps), every frame is decoded and counted, as vPDQ does.

Limits (:class:`VideoOptions`): ``max_seconds`` of video sampled, a ``decode_seconds`` wall-clock
budget per file, the pixel limit per frame. What goes wrong ends the sampling with a
:class:`~matcher.errors.DecodeError` subclass whose message says what, after the frames sampled
before it; nothing here writes to stderr (FFmpeg's log stays off, PyAV's default).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import DecodeError, ImageTooLargeError, UsageError

__all__ = [
    "VideoOptions",
    "VideoInfo",
    "VideoFrame",
    "NoVideoStreamError",
    "VideoLimitError",
    "frame_step",
    "vpdq_timestamp",
    "open_video",
    "iter_video_frames",
]

_AV: Any = None


def _av() -> Any:
    """PyAV, imported on the first video (commands that meet no video never pay for it)."""
    global _AV
    if _AV is None:
        try:
            import av
        except ImportError as exc:  # pragma: no cover - the extra is not installed
            raise DecodeError("videos need PyAV: pip install 'perceptual-matcher[video]'") from exc
        _AV = av
    return _AV


class NoVideoStreamError(DecodeError):
    """A container (MP4, Matroska, AVI, ...) without a video stream: audio only, or empty."""


class VideoLimitError(DecodeError):
    """A video over one of :class:`VideoOptions`' limits (length, decode time); the frames sampled
    before the limit are kept."""


@dataclass(frozen=True, slots=True)
class VideoOptions:
    """How videos are sampled and bounded.

    - ``fps``: frames sampled per second of video (vPDQ's ``seconds_per_hash`` is ``1 / fps``);
      default 1, as vPDQ's.
    - ``max_seconds``: seconds of video sampled; a longer video gets its first ``max_seconds``
      sampled and an error saying it was cut.
    - ``decode_seconds``: wall-clock budget for decoding one file; over it, the sampling stops with
      an error (the frames sampled so far are kept). Bounds a pathological or adversarial stream.
    """

    fps: float = 1.0
    max_seconds: float = 4 * 3600.0
    decode_seconds: float = 600.0

    def __post_init__(self) -> None:
        for name in ("fps", "max_seconds", "decode_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise UsageError(f"VideoOptions.{name} must be a positive number, not {value!r}")

    @property
    def seconds_per_hash(self) -> float:
        """vPDQ's ``seconds_per_hash`` for this sampling rate."""
        return 1.0 / self.fps


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What a video's container says: the first video stream's ``width``/``height``, ``rate``
    (frames per second as vPDQ takes it), ``frame_count`` (``None`` when unknown), ``duration``
    in seconds (``None`` when unknown) and ``codec`` name."""

    width: int
    height: int
    rate: Fraction
    frame_count: int | None
    duration: float | None
    codec: str


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One sampled frame: its ``index`` (frame number, from 0, in presentation order),
    ``timestamp`` (seconds, as vPDQ computes it) and RGB pixels (``pixels``, HxWx3 uint8)."""

    index: int
    timestamp: float
    pixels: np.ndarray

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])


def frame_step(rate: Fraction | float, seconds_per_hash: float) -> int:
    """Every how many frames one is sampled: ``int(seconds_per_hash * rate)``, at least 1 (vPDQ)."""
    return max(1, int(seconds_per_hash * float(rate)))


def vpdq_timestamp(index: int, rate: Fraction | float) -> float:
    """The timestamp vPDQ gives frame ``index`` at ``rate``: float32 number over float32 rate."""
    return float(np.float32(index) / np.float32(float(rate)))


def _stream_rate(stream: Any) -> Fraction | None:
    for rate in (stream.average_rate, stream.base_rate):
        if rate is not None and rate.numerator > 0 and rate.denominator > 0:
            return Fraction(rate)
    return None


class _Session:
    """An open container with its first video stream; always closed by its owner."""

    def __init__(self, data: bytes | io.BytesIO) -> None:
        av = _av()
        stream_in = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
        try:
            self.container = av.open(stream_in, mode="r", options={"probesize": "5000000"})
        except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError, MemoryError) as exc:
            raise DecodeError(f"cannot open video: {_reason(exc)}") from None
        try:
            videos = self.container.streams.video
            if not videos:
                raise NoVideoStreamError("no video stream")
            self.stream = videos[0]
            context = self.stream.codec_context
            if context is None:  # a codec FFmpeg has no decoder for (or a mangled codec id)
                raise DecodeError("no decoder for the video stream's codec")
            width, height = int(context.width or 0), int(context.height or 0)
            rate = _stream_rate(self.stream)
            if width <= 0 or height <= 0:
                raise DecodeError("video stream declares no picture size")
            if rate is None:
                raise DecodeError("video stream declares no frame rate")
            duration = None
            if self.stream.duration is not None and self.stream.time_base is not None:
                duration = float(self.stream.duration * self.stream.time_base)
            elif self.container.duration is not None:
                duration = self.container.duration / 1_000_000
            frames = int(self.stream.frames) or None
            self.info = VideoInfo(width, height, rate, frames, duration, str(context.name))
        except BaseException:
            self.container.close()
            raise

    def close(self) -> None:
        self.container.close()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def open_video(data: bytes, max_pixels: int) -> VideoInfo:
    """The header facts of the video in ``data``; :class:`NoVideoStreamError` when it has no video
    stream, :class:`~matcher.errors.ImageTooLargeError` when its picture is over ``max_pixels``,
    :class:`~matcher.errors.DecodeError` when it cannot be opened."""
    session = _Session(data)
    try:
        _check_size(session.info.width, session.info.height, max_pixels)
        return session.info
    finally:
        session.close()


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"video declares {width}x{height} = {width * height} pixels per frame, over the limit of {max_pixels}"
        )


@dataclass(slots=True)
class _Plan:
    """Which packets to send, by decode position, and the frame number of each sampled pts."""

    send: list[bool]
    sampled_pts: dict[int, int]  # pts -> frame number
    nonref_ok: list[bool]  # the packet is not sampled: the decoder may skip it if nothing refers to it
    total: int
    cut: bool  # frames beyond max_seconds were left out


def _plan(packets: Sequence[Any], step: int, last_index: int) -> _Plan | None:
    """The decoding plan of the demuxed ``packets`` (decode order), or ``None`` when they cannot be
    numbered by presentation timestamp (then everything is decoded and counted)."""
    pts = [p.pts for p in packets]
    if any(value is None for value in pts) or len(set(pts)) != len(pts):
        return None
    order = sorted(range(len(packets)), key=lambda i: pts[i])
    number = [0] * len(packets)
    for rank, i in enumerate(order):
        number[i] = rank
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
    if not keyframes or keyframes[0] != 0:
        return None  # a stream that does not start on a keyframe: count what the decoder gives
    send = [False] * len(packets)
    nonref_ok = [True] * len(packets)
    sampled: dict[int, int] = {}
    cut = False
    key_pos = 0
    key_at: list[int] = []  # for each packet, the last keyframe at or before it (decode order)
    for i in range(len(packets)):
        if key_pos + 1 < len(keyframes) and keyframes[key_pos + 1] <= i:
            key_pos += 1
        key_at.append(keyframes[key_pos])
    for i in range(len(packets)):
        n = number[i]
        if n % step != 0:
            continue
        if n > last_index:
            cut = True
            continue
        sampled[pts[i]] = n
        nonref_ok[i] = False
        start = key_at[i]
        if pts[i] < pts[start] and start > 0:  # a leading picture of an open GOP: from the keyframe before
            start = key_at[start - 1]
        for j in range(start, i + 1):
            send[j] = True
    return _Plan(send, sampled, nonref_ok, len(packets), cut)


def iter_video_frames(
    data: bytes, options: VideoOptions | None = None, max_pixels: int = 178_956_970
) -> Generator[VideoFrame, None, VideoInfo]:
    """The sampled frames of the video in ``data``, in frame order (see the module documentation).

    Raises (after the frames sampled before it) :class:`NoVideoStreamError`,
    :class:`~matcher.errors.ImageTooLargeError`, :class:`VideoLimitError` or
    :class:`~matcher.errors.DecodeError`; returns the :class:`VideoInfo` when done.
    """
    av = _av()
    options = options or VideoOptions()
    started = time.monotonic()
    session = _Session(data)
    try:
        info = session.info
        _check_size(info.width, info.height, max_pixels)
        step = frame_step(info.rate, options.seconds_per_hash)
        last_index = max(0, math.ceil(options.max_seconds * float(info.rate)) - 1)
        stream = session.stream
        context = stream.codec_context
        context.thread_count = 1
        try:
            packets = [p for p in session.container.demux(stream) if p.size > 0]
        except (av.FFmpegError, ValueError, OSError, MemoryError) as exc:
            raise DecodeError(f"cannot read video packets: {_reason(exc)}") from None
        if not packets:
            raise DecodeError("video stream has no frames")
        info = VideoInfo(info.width, info.height, info.rate, len(packets), info.duration, info.codec)
        plan = _plan(packets, step, last_index)
        if plan is not None:
            yield from _decode_planned(packets, plan, context, info, started, options, max_pixels)
        else:
            yield from _decode_all(packets, step, last_index, context, info, started, options, max_pixels)
        if (plan is not None and plan.cut) or (plan is None and len(packets) - 1 > last_index):
            raise VideoLimitError(
                f"video is longer than the limit of {options.max_seconds:g} s; only the first "
                f"{options.max_seconds:g} s were sampled"
            )
        return info
    finally:
        session.close()


def _budget(started: float, options: VideoOptions) -> None:
    if time.monotonic() - started > options.decode_seconds:
        raise VideoLimitError(f"decoding took longer than the budget of {options.decode_seconds:g} s; sampling stopped")


def _rgb(frame: Any, info: VideoInfo, max_pixels: int) -> np.ndarray:
    _check_size(int(frame.width), int(frame.height), max_pixels)
    out = frame.reformat(width=info.width, height=info.height, format="rgb24", interpolation="AREA")
    pixels: np.ndarray = out.to_ndarray()
    return pixels


def _decode_planned(
    packets: Sequence[Any],
    plan: _Plan,
    context: Any,
    info: VideoInfo,
    started: float,
    options: VideoOptions,
    max_pixels: int,
) -> Generator[VideoFrame, None, None]:
    """Decode only the packets the plan sends; sampled frames are given as the decoder outputs them
    (presentation order)."""
    av = _av()
    found: set[int] = set()
    skipping = False
    for i, packet in enumerate(packets):
        if not plan.send[i]:
            continue
        _budget(started, options)
        want_skip = plan.nonref_ok[i]
        if want_skip != skipping:
            context.skip_frame = "NONREF" if want_skip else "DEFAULT"
            skipping = want_skip
        try:
            frames = context.decode(packet)
        except (av.FFmpegError, ValueError, MemoryError) as exc:
            raise DecodeError(f"cannot decode video frame: {_reason(exc)}") from None
        yield from _collect(frames, plan, found, info, max_pixels)
    context.skip_frame = "DEFAULT"
    try:
        frames = context.decode(None)
    except (av.FFmpegError, ValueError, MemoryError) as exc:
        raise DecodeError(f"cannot decode video frame: {_reason(exc)}") from None
    yield from _collect(frames, plan, found, info, max_pixels)
    if len(found) < len(plan.sampled_pts):
        missing = min(n for n in plan.sampled_pts.values() if n not in found)
        raise DecodeError(f"video frame {missing} could not be decoded")


def _collect(
    frames: Sequence[Any], plan: _Plan, found: set[int], info: VideoInfo, max_pixels: int
) -> Generator[VideoFrame, None, None]:
    for frame in frames:
        n = plan.sampled_pts.get(frame.pts) if frame.pts is not None else None
        if n is None or n in found:
            continue
        found.add(n)
        yield VideoFrame(n, vpdq_timestamp(n, info.rate), _rgb(frame, info, max_pixels))


def _decode_all(
    packets: Sequence[Any],
    step: int,
    last_index: int,
    context: Any,
    info: VideoInfo,
    started: float,
    options: VideoOptions,
    max_pixels: int,
) -> Generator[VideoFrame, None, None]:
    """Decode every packet and count the frames the decoder gives, as vPDQ does."""
    av = _av()
    context.skip_frame = "DEFAULT"
    number = 0
    for packet in [*packets, None]:
        _budget(started, options)
        try:
            frames = context.decode(packet)
        except (av.FFmpegError, ValueError, MemoryError) as exc:
            raise DecodeError(f"cannot decode video frame {number}: {_reason(exc)}") from None
        for frame in frames:
            if number > last_index:
                return
            if number % step == 0:
                yield VideoFrame(number, vpdq_timestamp(number, info.rate), _rgb(frame, info, max_pixels))
            number += 1
