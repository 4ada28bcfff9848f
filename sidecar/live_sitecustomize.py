"""elyra-sidecar live output, installed as `sitecustomize.py` on the main container's PYTHONPATH.

Elyra 4.0's bootstrapper runs the node's script with `subprocess.run(..., stdout=PIPE, stderr=STDOUT)`
and writes `<name>.log` only after success. This module runs at start-up of every Python process in
the container and does nothing, except in the process that runs the node's script
(`python3 <ELYRA_SIDECAR_LIVE_SCRIPT>`): there it forks a small tee that copies everything written to
fds 1 and 2 both to where they went before (so the bootstrapper still receives every byte, in order)
and to `ELYRA_SIDECAR_LIVE_LOG`, which the elyra-log sidecar follows. It never changes the script's
exit status, and any failure (fork, closed fds, unwritable file) leaves the script running untouched.
A `sitecustomize` the image already has still runs afterwards.

Standard library only, and syntax for Python 3.6+, because it runs in the user's image.
"""

import os
import sys
from typing import Dict, Optional

_SCRIPT_ENV = "ELYRA_SIDECAR_LIVE_SCRIPT"
_LOG_ENV = "ELYRA_SIDECAR_LIVE_LOG"
_ACTIVE_ENV = "ELYRA_SIDECAR_LIVE_ACTIVE"
_CHUNK = 65536


def _is_node_script() -> bool:
    script = os.environ.get(_SCRIPT_ENV)
    if not script or not os.environ.get(_LOG_ENV) or os.environ.get(_ACTIVE_ENV):
        return False
    argv = getattr(sys, "argv", None) or []
    return bool(argv) and os.path.basename(argv[0]) == script


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _same_file(a: int, b: int) -> bool:
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _tee(sources: Dict[int, Optional[int]], log_fd: int) -> None:
    """In the forked child: copy each pipe to its original fd and to the log, until every pipe ends."""
    import select  # noqa: PLC0415 - only the child needs it
    import signal  # noqa: PLC0415

    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    live: Dict[int, Optional[int]] = dict(
        sources
    )  # pipe read fd -> original fd (or None once writing there failed)
    log_ok = True
    while live:
        ready, _, _ = select.select(list(live), [], [])
        for fd in ready:
            try:
                data = os.read(fd, _CHUNK)
            except InterruptedError:
                continue
            if not data:
                del live[fd]
                continue
            target = live[fd]
            if target is not None:
                try:
                    _write_all(target, data)
                except OSError:
                    live[fd] = None  # the reader went away: keep the log copy going
            if log_ok:
                try:
                    _write_all(log_fd, data)
                except OSError:
                    log_ok = False


def _start() -> None:
    try:
        out_fd = os.dup(1)
    except OSError:
        return  # fd 1 closed: nothing to copy
    try:
        err_fd = os.dup(2)
    except OSError:
        err_fd = None
    merged = err_fd is not None and _same_file(1, 2)
    opened = [out_fd] + ([err_fd] if err_fd is not None else [])
    try:
        log_fd = os.open(os.environ[_LOG_ENV], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        for fd in opened:
            os.close(fd)
        return
    opened.append(log_fd)
    pipes = []
    try:
        out_r, out_w = os.pipe()
        pipes += [out_r, out_w]
        if err_fd is not None and not merged:
            err_r, err_w = os.pipe()
            pipes += [err_r, err_w]
        pid = os.fork()
    except OSError:
        for fd in opened + pipes:
            os.close(fd)
        return
    if pid == 0:
        try:
            sources: Dict[int, Optional[int]] = {out_r: out_fd}
            os.close(out_w)
            if len(pipes) == 4:
                os.close(err_w)
                sources[err_r] = err_fd
            # The child must not keep the script's ends of the pipes (or its own fds 1/2) open.
            for fd in (1, 2):
                try:
                    os.close(fd)
                except OSError:
                    pass
            _tee(sources, log_fd)
        finally:
            os._exit(0)
    # The script: fds 1 and 2 now feed the tee; the bootstrapper still gets every byte through it.
    os.dup2(out_w, 1)
    if err_fd is not None:
        os.dup2(out_w if merged else err_w, 2)
    for fd in opened + pipes:
        os.close(fd)
    os.environ[_ACTIVE_ENV] = "1"  # child processes share the pipes; they must not tee again


def _chain_image_sitecustomize() -> None:
    """Run the image's own sitecustomize, if any, found on sys.path after this file's directory."""
    import importlib.machinery  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None or spec.origin == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


if _is_node_script():
    try:
        _start()
    except Exception:  # noqa: S110 - never break the user's script
        pass
_chain_image_sitecustomize()
