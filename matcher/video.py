"""Sample the frames of a video as vPDQ does, safely: the video decoder of the pipeline.

A video (MP4/MOV/3GP, Matroska/WebM, AVI: :attr:`matcher.imaging.MediaType.is_video`, by magic
bytes) is decoded with PyAV (FFmpeg) from the bytes the pipeline read once, or, for a video too
large to hold (over ``max_file_bytes``), from the file itself, re-opened read-only
(:func:`matcher.files.reopen_entry`). Frames are chosen as the
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
nothing after a GOP's last sampled frame is decoded. Only sampled frames are converted to RGB (one
scaler context for the video). The demuxed packets are held in memory up to
:data:`HELD_PACKET_BYTES`; a video with more is demuxed a second time for decoding (the plan
comes from the first pass, and each packet of the second must be the one planned). When
the packets do not allow that numbering (a packet without a presentation timestamp, duplicate
timestamps), every frame is decoded and counted, as vPDQ does.

Limits (:class:`VideoOptions`): ``max_seconds`` of video sampled, ``max_frames`` sampled frames
(none by default), a ``decode_seconds`` wall-clock budget per file, the pixel limit per frame.
What goes wrong ends the sampling with a :class:`~matcher.errors.DecodeError` subclass whose
message says what, after the frames sampled before it; nothing here writes to stderr (FFmpeg's
log stays off, PyAV's default).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO, TypeAlias

import numpy as np

from .errors import DecodeError, ImageTooLargeError, UsageError

__all__ = [
    "VideoOptions",
    "VideoInfo",
    "VideoFrame",
    "VideoReader",
    "VideoSource",
    "HELD_PACKET_BYTES",
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
    """A video over one of :class:`VideoOptions`' limits (length, sampled frames, decode time); the
    frames sampled before the limit are kept."""


@dataclass(frozen=True, slots=True)
class VideoOptions:
    """How videos are sampled and bounded.

    - ``fps``: frames sampled per second of video (vPDQ's ``seconds_per_hash`` is ``1 / fps``);
      default 1, as vPDQ's.
    - ``max_seconds``: seconds of video sampled; a longer video gets its first ``max_seconds``
      sampled and an error saying it was cut.
    - ``decode_seconds``: wall-clock budget for decoding one file; over it, the sampling stops with
      an error (the frames sampled so far are kept). Bounds a pathological or adversarial stream.
    - ``max_frames``: sampled frames per video; a video with more gets its first ``max_frames``
      sampled and an error saying it was cut (as ``max_seconds``). ``None`` (the default): only
      ``max_seconds`` bounds them (14,400 frames at 1 fps), so the image default of 100 frames per
      animation never cuts a video; the command line's ``--max-frames``, when given, sets both.
    """

    fps: float = 1.0
    max_seconds: float = 4 * 3600.0
    decode_seconds: float = 600.0
    max_frames: int | None = None

    def __post_init__(self) -> None:
        for name in ("fps", "max_seconds", "decode_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise UsageError(f"VideoOptions.{name} must be a positive number, not {value!r}")
        frames = self.max_frames
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
            raise UsageError(f"VideoOptions.max_frames must be a positive integer or None, not {frames!r}")

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


#: A video given as its bytes (held in memory), or as a binary file open for reading and seeking
#: (read from the file, never written: :func:`matcher.files.reopen_entry`).
VideoSource: TypeAlias = bytes | BinaryIO

#: The compressed packets of one video held in memory between planning and decoding, at most; a
#: video with more is demuxed twice (the plan from the first pass, the packets from the second), so
#: memory stays bounded for a video of any size.
HELD_PACKET_BYTES = 64 * 1024 * 1024


def _stream_of(source: VideoSource) -> BinaryIO:
    """A fresh reader of ``source`` at its start: a new view of bytes, the file rewound."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    try:
        source.seek(0)
    except (OSError, ValueError) as exc:
        raise DecodeError(f"cannot read video: {_reason(exc)}") from None
    return source


class _Session:
    """An open container with its first video stream; always closed by its owner."""

    def __init__(self, source: VideoSource) -> None:
        av = _av()
        try:
            self.container = av.open(_stream_of(source), mode="r", options={"probesize": "5000000"})
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

    def packets(self, started: float, options: VideoOptions) -> Iterator[Any]:
        """The video stream's packets with content, in decode order (within the decode budget)."""
        av = _av()
        demuxer = self.container.demux(self.stream)
        count = 0
        while True:
            try:
                packet = next(demuxer, None)
            except (av.FFmpegError, ValueError, OSError, MemoryError) as exc:
                raise DecodeError(f"cannot read video packets: {_reason(exc)}") from None
            if packet is None:
                return
            count += 1
            if count % 256 == 0:
                _budget(started, options)
            if packet.size > 0:
                yield packet

    def close(self) -> None:
        self.container.close()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"video declares {width}x{height} = {width * height} pixels per frame, over the limit of {max_pixels}"
        )


class VideoReader:
    """One video opened once: its header facts (:attr:`info`) and its sampled frames (:meth:`frames`).

    ``source``: the video's bytes, or a binary file open for reading and seeking (read from its
    start; neither closed nor written here). Opening raises :class:`NoVideoStreamError`,
    :class:`~matcher.errors.ImageTooLargeError` (picture over ``max_pixels``) or
    :class:`~matcher.errors.DecodeError`. A context manager; :meth:`close` releases the container.
    """

    def __init__(self, source: VideoSource, options: VideoOptions | None = None, max_pixels: int = 178_956_970) -> None:
        self.options = options or VideoOptions()
        self.max_pixels = max_pixels
        self._source = source
        self._started = time.monotonic()
        self._session = _Session(source)
        try:
            _check_size(self._session.info.width, self._session.info.height, max_pixels)
        except BaseException:
            self._session.close()
            raise
        self.info: VideoInfo = self._session.info

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the container (again: nothing)."""
        self._session.close()

    def frames(self) -> Generator[VideoFrame, None, VideoInfo]:
        """The sampled frames, in frame order (see the module documentation).

        Raises (after the frames sampled before it) :class:`VideoLimitError` or
        :class:`~matcher.errors.DecodeError`; returns the :class:`VideoInfo` with the frame count when
        done. Call it once.
        """
        options, started = self.options, self._started
        info = self.info
        step = frame_step(info.rate, options.seconds_per_hash)
        last_index = max(0, math.ceil(options.max_seconds * float(info.rate)) - 1)
        by_frames = False  # max_frames, not max_seconds, bounds the sampling
        if options.max_frames is not None and (options.max_frames - 1) * step < last_index:
            last_index, by_frames = (options.max_frames - 1) * step, True  # the number of the last frame sampled
        facts: list[tuple[int | None, bool]] = []
        held: list[Any] | None = []
        held_bytes = 0
        for packet in self._session.packets(started, options):
            facts.append((packet.pts, bool(packet.is_keyframe)))
            if held is not None:
                held_bytes += packet.size
                if held_bytes <= HELD_PACKET_BYTES:
                    held.append(packet)
                else:
                    held = None  # too much to hold: demuxed again to decode
        if not facts:
            raise DecodeError("video stream has no frames")
        info = VideoInfo(info.width, info.height, info.rate, len(facts), info.duration, info.codec)
        plan = _plan(facts, step, last_index)
        packets: Iterable[Any]
        if held is not None:
            packets = held
        else:  # read the video again, from its start, for the packets themselves
            self._session.close()
            self._session = _Session(self._source)
            packets = self._session.packets(started, options)
        context = self._session.stream.codec_context
        context.thread_count = 1
        decoder = _Decoder(context, facts, info, started, options, self.max_pixels)
        if plan is not None:
            yield from decoder.planned(packets, plan)
        else:
            yield from decoder.every(packets, step, last_index)
        if by_frames:
            if (plan is not None and plan.cut) or (plan is None and (last_index // step + 1) * step < len(facts)):
                raise VideoLimitError(
                    f"video has more than {options.max_frames} sampled frames, the limit; only the first "
                    f"{options.max_frames} were sampled"
                )
        elif (plan is not None and plan.cut) or (plan is None and len(facts) - 1 > last_index):
            raise VideoLimitError(
                f"video is longer than the limit of {options.max_seconds:g} s; only the first "
                f"{options.max_seconds:g} s were sampled"
            )
        return info


def open_video(source: VideoSource, max_pixels: int) -> VideoInfo:
    """The header facts of the video ``source`` (bytes or an open binary file);
    :class:`NoVideoStreamError` when it has no video stream,
    :class:`~matcher.errors.ImageTooLargeError` when its picture is over ``max_pixels``,
    :class:`~matcher.errors.DecodeError` when it cannot be opened."""
    with VideoReader(source, max_pixels=max_pixels) as reader:
        return reader.info


def iter_video_frames(
    source: VideoSource, options: VideoOptions | None = None, max_pixels: int = 178_956_970
) -> Generator[VideoFrame, None, VideoInfo]:
    """The sampled frames of the video ``source`` (bytes or an open binary file), in frame order
    (see the module documentation and :class:`VideoReader`).

    Raises (after the frames sampled before it) :class:`NoVideoStreamError`,
    :class:`~matcher.errors.ImageTooLargeError`, :class:`VideoLimitError` or
    :class:`~matcher.errors.DecodeError`; returns the :class:`VideoInfo` when done.
    """
    with VideoReader(source, options, max_pixels) as reader:
        return (yield from reader.frames())


@dataclass(slots=True)
class _Plan:
    """Which packets to send, by decode position, and the frame number of each sampled pts."""

    send: list[bool]
    sampled_pts: dict[int, int]  # pts -> frame number
    nonref_ok: list[bool]  # the packet is not sampled: the decoder may skip it if nothing refers to it
    last_sent: int  # the decode position of the last packet sent
    cut: bool  # sampled frames beyond the limit (max_seconds or max_frames) were left out


def _plan(facts: Sequence[tuple[int | None, bool]], step: int, last_index: int) -> _Plan | None:
    """The decoding plan of the demuxed packets' ``(pts, keyframe)`` (decode order), or ``None``
    when they cannot be numbered by presentation timestamp (then everything is decoded and counted)."""
    if any(value is None for value, _ in facts):
        return None
    pts = [int(value or 0) for value, _ in facts]
    if len(set(pts)) != len(pts):
        return None
    order = sorted(range(len(facts)), key=lambda i: pts[i])
    number = [0] * len(facts)
    for rank, i in enumerate(order):
        number[i] = rank
    keyframes = [i for i, (_, key) in enumerate(facts) if key]
    if not keyframes or keyframes[0] != 0:
        return None  # a stream that does not start on a keyframe: count what the decoder gives
    send = [False] * len(facts)
    nonref_ok = [True] * len(facts)
    sampled: dict[int, int] = {}
    cut = False
    key_pos = 0
    key_at: list[int] = []  # for each packet, the last keyframe at or before it (decode order)
    for i in range(len(facts)):
        if key_pos + 1 < len(keyframes) and keyframes[key_pos + 1] <= i:
            key_pos += 1
        key_at.append(keyframes[key_pos])
    last_sent = -1
    for i in range(len(facts)):
        n = number[i]
        if n % step != 0:
            continue
        if n > last_index:
            cut = True
            continue
        value = pts[i]
        sampled[value] = n
        nonref_ok[i] = False
        start = key_at[i]
        if value < pts[start] and start > 0:  # a leading picture of an open GOP: from the keyframe before
            start = key_at[start - 1]
        for j in range(start, i + 1):
            send[j] = True
        last_sent = max(last_sent, i)
    return _Plan(send, sampled, nonref_ok, last_sent, cut)


def _budget(started: float, options: VideoOptions) -> None:
    if time.monotonic() - started > options.decode_seconds:
        raise VideoLimitError(f"decoding took longer than the budget of {options.decode_seconds:g} s; sampling stopped")


class _Decoder:
    """Feeds packets to one codec context and gives the sampled frames as RGB."""

    def __init__(
        self,
        context: Any,
        facts: Sequence[tuple[int | None, bool]],
        info: VideoInfo,
        started: float,
        options: VideoOptions,
        max_pixels: int,
    ) -> None:
        from av.video.reformatter import VideoReformatter

        self.context = context
        self.facts = facts
        self.info = info
        self.started = started
        self.options = options
        self.max_pixels = max_pixels
        self.reformatter = VideoReformatter()  # one scaler context, reused frame after frame

    def decode(self, packet: Any, number: int | None = None) -> Sequence[Any]:
        """The frames the decoder gives for ``packet`` (``None``: flush)."""
        av = _av()
        try:
            frames: Sequence[Any] = self.context.decode(packet)
        except (av.FFmpegError, ValueError, MemoryError) as exc:
            where = "" if number is None else f" {number}"
            raise DecodeError(f"cannot decode video frame{where}: {_reason(exc)}") from None
        return frames

    def rgb(self, frame: Any) -> np.ndarray:
        """The frame in RGB24 at the stream's size, converted as vPDQ converts it (swscale, area)."""
        info = self.info
        _check_size(int(frame.width), int(frame.height), self.max_pixels)
        out = self.reformatter.reformat(
            frame, width=info.width, height=info.height, format="rgb24", interpolation="AREA", threads=1
        )
        pixels: np.ndarray = out.to_ndarray()
        return pixels

    def check(self, position: int, packet: Any) -> None:
        """A packet demuxed again must be the one planned from the first pass."""
        if position >= len(self.facts) or packet.pts != self.facts[position][0]:
            raise DecodeError("video packets differ between two reads of the file (was it changed?)")

    def planned(self, packets: Iterable[Any], plan: _Plan) -> Generator[VideoFrame, None, None]:
        """Decode only the packets the plan sends; sampled frames are given as the decoder outputs
        them (presentation order)."""
        found: set[int] = set()
        skipping = False
        context = self.context
        for i, packet in enumerate(packets):
            if i > plan.last_sent:
                break
            self.check(i, packet)
            if not plan.send[i]:
                continue
            _budget(self.started, self.options)
            want_skip = plan.nonref_ok[i]
            if want_skip != skipping:
                context.skip_frame = "NONREF" if want_skip else "DEFAULT"
                skipping = want_skip
            yield from self.collect(self.decode(packet), plan, found)
        context.skip_frame = "DEFAULT"
        yield from self.collect(self.decode(None), plan, found)
        if len(found) < len(plan.sampled_pts):
            missing = min(n for n in plan.sampled_pts.values() if n not in found)
            raise DecodeError(f"video frame {missing} could not be decoded")

    def collect(self, frames: Sequence[Any], plan: _Plan, found: set[int]) -> Generator[VideoFrame, None, None]:
        for frame in frames:
            n = plan.sampled_pts.get(frame.pts) if frame.pts is not None else None
            if n is None or n in found:
                continue
            found.add(n)
            yield VideoFrame(n, vpdq_timestamp(n, self.info.rate), self.rgb(frame))

    def every(self, packets: Iterable[Any], step: int, last_index: int) -> Generator[VideoFrame, None, None]:
        """Decode every packet and count the frames the decoder gives, as vPDQ does."""
        self.context.skip_frame = "DEFAULT"
        number = 0
        position = 0
        for packet in _then_none(packets):
            _budget(self.started, self.options)
            if packet is not None:
                self.check(position, packet)
                position += 1
            for frame in self.decode(packet, number):
                if number > last_index:
                    return
                if number % step == 0:
                    yield VideoFrame(number, vpdq_timestamp(number, self.info.rate), self.rgb(frame))
                number += 1


def _then_none(packets: Iterable[Any]) -> Iterator[Any]:
    yield from packets
    yield None
