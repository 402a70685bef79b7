"""A POST with Transfer-Encoding: chunked over a plain socket (httpx always sends a length)."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit


def post_chunked(url: str, headers: dict[str, str], body: bytes, chunk: int = 8192) -> int:
    """POST ``body`` in chunks, with no Content-Length; the answer's status code."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Transfer-Encoding: chunked", "Connection: close", "", ""]
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 30) as sock:
        sock.sendall("\r\n".join(lines).encode())
        try:
            for start in range(0, len(body), chunk):
                piece = body[start : start + chunk]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer 413 and close before reading everything
        answer = b""
        while b"\r\n" not in answer and (data := sock.recv(4096)):
            answer += data
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert match, answer[:200]
    return int(match.group(1))
