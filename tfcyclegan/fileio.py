"""Atomic writes: a reader (or a crash) never sees half a file or half a folder.

Every file tfcyclegan writes for a user (config.json, run.json, model.keras,
sample grids, .tflite files, export reports, SavedModel versions) goes through
here: it is written beside its target under a hidden temporary name, then
renamed into place (`os.replace` is atomic within a file system).
"""

import contextlib
import errno
import os
import pathlib
import shutil
import sys
import tempfile
import uuid

try:  # POSIX; elsewhere run folders are not locked (RunLock says so)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _umask():
    # os.umask can only be read by setting it; restore it at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yields a temporary path beside `path`; renamed onto `path` if the block succeeds.

    For writers that take a path (`model.save`, `Image.save`); `suffix` ends
    the temporary name for writers that read the format from it (".keras").
    The file gets the permissions a plain `open(path, "w")` would (mkstemp
    alone makes it 0600), and is removed if the block raises.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data):
    """Writes `data` (bytes, or str as UTF-8) to `path` atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_png(path, image):
    """Writes a uint8 HxW(xC) image to `path` as a PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def replace_dir(tmp, target, overwrite):
    """Moves folder `tmp` to `target` in one rename, so a reader never sees half a folder.

    An existing `target` is refused unless `overwrite`; then it is swapped out
    first and deleted after the new folder is in place.
    """
    tmp, target = pathlib.Path(tmp), pathlib.Path(target)
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
        trash = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, trash)
        os.replace(tmp, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, target)


@contextlib.contextmanager
def native_stderr_silenced(when=True):
    """Sends file descriptor 2 to /dev/null inside the block (if `when`).

    For native libraries that write to standard error themselves, bypassing
    Python and their own log levels (TensorFlow's lines before its logging is
    set up, LiteRT's "Created TensorFlow Lite XNNPACK delegate"). Python's own
    `sys.stderr` writes are flushed first; an exception still propagates.
    """
    if not when:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def native_logs_hidden():
    """Whether TensorFlow's native logs are to be hidden (TF_CPP_MIN_LOG_LEVEL >= 1)."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")


LOCK_FILE = ".lock"


class FolderInUseError(RuntimeError):
    """Another process holds the lock of a folder this one would write (`RunLock`)."""


class RunLock:
    """An exclusive lock on a folder that one process writes (a run being trained).

    `flock` on `FOLDER/.lock`, which holds the owner's PID: a second process is
    refused and told that PID; the operating system releases the lock when the
    owner exits, however it exits (kill -9 included), so no stale lock is left.
    The folder is created if needed; if the lock was its only content when the
    lock is released (a start that failed before writing anything), the lock file
    and the folders this lock created (the folder, missing parents) are removed. Without `fcntl` (Windows) this
    does nothing.

    Args:
        folder: the folder to lock.
        purpose: what the folder is, for the message (e.g. "run").
    """

    def __init__(self, folder, purpose="folder"):
        self.folder = os.fspath(folder)
        self.purpose = purpose
        self.path = os.path.join(self.folder, LOCK_FILE)
        self._fd = None
        self._created = []

    def __enter__(self):
        if fcntl is None:
            return self
        # The folders this lock creates (the run and any missing parents), deepest first.
        self._created = []
        folder = os.path.abspath(self.folder)
        while not os.path.exists(folder):
            self._created.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            owner = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise FolderInUseError(
                f"{self.folder} is in use: process {owner} is writing this {self.purpose} "
                f"(lock {self.path}). Wait for it to end or stop it; two processes must not "
                "write one run."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def __exit__(self, *exc_info):
        if self._fd is None:
            return False
        try:
            if os.listdir(self.folder) == [LOCK_FILE]:  # nothing was written: leave no trace
                os.remove(self.path)
                for folder in self._created:
                    if os.listdir(folder):
                        break
                    os.rmdir(folder)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        return False
