"""HTTP helpers of the service: replies, client errors, reading a bounded body, in-memory multipart."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..errors import MatcherError

__all__ = ["ClientError", "Reply", "read_body", "read_json", "read_upload_bytes"]


class ClientError(MatcherError):
    """A request the service refuses: ``status`` (4xx, or 503), ``kind`` (a short code) and the message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: HTTP ``status``, ``body`` (JSON-ready, or text with ``text=True``) and what the audit
    log keeps of it (``result``, ``hashes``, ``matches``, ``generation``, ``message``)."""

    status: int
    body: Any
    result: str
    hashes: tuple[str, ...] = ()
    matches: tuple[int, ...] = ()
    generation: int | None = None
    message: str | None = None
    text: bool = False


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request's body, at most ``limit`` bytes (413 above, refused from ``Content-Length``
    before reading when it says so), received within ``timeout`` seconds (408 after it)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ClientError(400, "bad_request", f"Content-Length {declared[:40]!r} is not a number")
        if int(declared) > limit:
            raise ClientError(413, "too_large", f"the body of {int(declared)} bytes is over the limit of {limit} bytes")

    async def receive() -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ClientError(413, "too_large", f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(receive(), timeout)
    except TimeoutError:
        raise ClientError(408, "body_timeout", f"the body was not received within {timeout:g} seconds") from None


async def read_json(request: Request, limit: int, timeout: float) -> Any:
    """The request's JSON body (400 with the parser's message when it is not JSON)."""
    body = await read_body(request, limit, timeout)
    if not body.strip():
        raise ClientError(400, "bad_json", "the body is empty; a JSON object was expected")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(400, "bad_json", f"the body is not valid JSON: {exc}") from None


def _multipart_file(body: bytes, content_type: str, limit: int) -> tuple[bytes, str | None]:
    """The one file of a multipart/form-data body, kept in memory (never spooled to disk)."""
    from python_multipart import FormParser
    from python_multipart.multipart import parse_options_header

    _type, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ClientError(400, "bad_multipart", "multipart/form-data without a boundary")
    found: list[Any] = []
    parser = FormParser(
        "multipart/form-data",
        None,
        found.append,
        boundary=boundary,
        config={"MAX_MEMORY_FILE_SIZE": limit + 1, "UPLOAD_KEEP_FILENAME": False},
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - the parser's errors are the client's malformed body
        raise ClientError(400, "bad_multipart", f"the multipart/form-data body is malformed: {exc}") from None
    if not found:
        raise ClientError(400, "bad_multipart", "missing multipart/form-data file upload")
    if len(found) > 1:
        raise ClientError(400, "bad_multipart", "only one file allowed per request")
    upload = found[0]
    if not upload.in_memory:  # cannot happen (the body is bounded below the memory limit)
        raise ClientError(413, "too_large", "the upload is too large")
    upload.file_object.seek(0)
    data = upload.file_object.read()
    name = upload.file_name.decode("utf-8", "replace") if upload.file_name else None
    return data, name


async def read_upload_bytes(request: Request, limit: int, timeout: float) -> tuple[bytes, str]:
    """The uploaded image: the raw body, or the one file of a multipart/form-data body; and its
    name (the multipart file name, else ``"upload"``). 400 for an empty upload."""
    body = await read_body(request, limit, timeout)
    content_type = request.headers.get("content-type", "")
    name: str | None = None
    if content_type.lower().startswith("multipart/form-data"):
        body, name = _multipart_file(body, content_type, limit)
    if not body:
        raise ClientError(
            400, "empty", "the upload is empty (0 bytes); send the image as the body or as a multipart file"
        )
    return body, name or "upload"
