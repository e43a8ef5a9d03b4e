"""The form of an audio request, read with its size bounded as the bytes arrive.

Whatever the transfer encoding (`Content-Length` or chunked), the body is counted while it is
read and reading stops at the limit with 413. A declared `Content-Length` over the limit is
refused before any byte is read. The file part may hold `max_upload_bytes`; the form's other
fields and the multipart framing get `FORM_OVERHEAD_BYTES` on top.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

from serve.errors import FileTooLargeError, InvalidRequestError, UnsupportedMediaTypeError

FORM_OVERHEAD_BYTES = 1 << 20
MAX_FIELD_BYTES = 64 * 1024
"""One text field (a prompt, hot words) is at most this long."""
MAX_FIELDS = 64
MULTIPART = b"multipart/form-data"
URLENCODED = b"application/x-www-form-urlencoded"


def request_body_limit(max_upload_bytes: int) -> int:
    """The most bytes an audio request's body may have."""
    return max_upload_bytes + FORM_OVERHEAD_BYTES


def declared_length(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


async def bounded(
    stream: AsyncIterator[bytes], limit: int, max_upload_bytes: int
) -> AsyncGenerator[bytes, None]:
    """The body's chunks, raising `FileTooLargeError` once they pass `limit` bytes."""
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise FileTooLargeError(max_upload_bytes)
        yield chunk


def _media_type(request: Request) -> bytes:
    from python_multipart.multipart import parse_options_header

    media_type, _ = parse_options_header(request.headers.get("content-type"))
    return bytes(media_type)


async def read_form(request: Request, max_upload_bytes: int) -> FormData:
    """Parse the request's form (multipart, or urlencoded without a file). The caller closes
    it (`await form.close()`), which removes spooled file parts."""
    limit = request_body_limit(max_upload_bytes)
    length = declared_length(request.headers.get("content-length"))
    if length is not None and length > limit:
        raise FileTooLargeError(max_upload_bytes)
    media_type = _media_type(request)
    if media_type not in (MULTIPART, URLENCODED):
        raise UnsupportedMediaTypeError(
            "Send the request as multipart/form-data with the audio in the 'file' field."
        )
    stream = bounded(request.stream(), limit, max_upload_bytes)
    parser: MultiPartParser | FormParser
    if media_type == MULTIPART:
        parser = MultiPartParser(
            request.headers,
            stream,
            max_files=1,
            max_fields=MAX_FIELDS,
            max_part_size=MAX_FIELD_BYTES,
        )
    else:
        parser = FormParser(
            request.headers, stream, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequestError(f"Could not parse the form: {exc.message}") from None
    finally:
        await stream.aclose()


def check_upload_size(upload: UploadFile, max_upload_bytes: int) -> None:
    if upload.size is not None and upload.size > max_upload_bytes:
        raise FileTooLargeError(max_upload_bytes)
