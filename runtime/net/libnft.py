"""nftables commands through libnftables (the library the `nft` binary is built on), in-process.

Loading the Services' table with `nft -f -` costs a fork and exec and nft's own start-up each
time (about 10 ms here, twice on the way from a commit to a serving Service: once for the new
Service, once when its endpoints are ready). libnftables runs the same text in the same
transaction without a new process. Its API (nftables' include/nftables/libnftables.h):
``nft_ctx_new``, ``nft_ctx_buffer_output`` / ``nft_ctx_buffer_error`` (capture what nft would
print), ``nft_ctx_output_set_flags`` (``NFT_CTX_OUTPUT_JSON`` for ``-j``),
``nft_run_cmd_from_buffer`` (0 on success), ``nft_ctx_get_output_buffer`` /
``nft_ctx_get_error_buffer`` (each read rewinds its buffer), ``nft_ctx_free``.

One context, used from one worker thread only (a context is not safe to share between threads);
callers on the event loop await ``run``. Where the library cannot be loaded, ``open_library``
returns None and kernelproxy.py runs the `nft` binary as before.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from concurrent.futures import ThreadPoolExecutor

NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_JSON = 1 << 4


class LibNft:
    """One libnftables context on a thread of its own."""

    def __init__(self, lib: ctypes.CDLL):
        self._lib = lib
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="libnftables")
        self._ctx: int | None = None

    def _run(self, command: str, json: bool) -> tuple[int, str, str]:
        lib = self._lib
        if self._ctx is None:
            ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
            if not ctx:
                return 1, "", "libnftables: nft_ctx_new failed"
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            self._ctx = int(ctx)
        lib.nft_ctx_output_set_flags(self._ctx, NFT_CTX_OUTPUT_JSON if json else 0)
        rc = lib.nft_run_cmd_from_buffer(self._ctx, command.encode())
        out = lib.nft_ctx_get_output_buffer(self._ctx) or b""
        err = lib.nft_ctx_get_error_buffer(self._ctx) or b""
        return (0 if rc == 0 else 1), out.decode(errors="replace"), err.decode(errors="replace")

    async def run(self, command: str, json: bool = False) -> tuple[int, str, str]:
        """Run nft command text (one command or a whole file's worth): (status, output, errors)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, command, json)

    def run_sync(self, command: str, json: bool = False) -> tuple[int, str, str]:
        return self._pool.submit(self._run, command, json).result()

    def close(self) -> None:
        def free() -> None:
            if self._ctx is not None:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = None

        self._pool.submit(free).result()
        self._pool.shutdown(wait=True)


def open_library() -> LibNft | None:
    """A libnftables context, or None where the library is missing or too old to have the calls."""
    name = ctypes.util.find_library("nftables") or "libnftables.so.1"
    try:
        lib = ctypes.CDLL(name)
        return LibNft(lib)
    except (OSError, AttributeError):
        return None
