"""The seam's switches: which faster forms may run where a layer is traced or run.

Context variables, so each thread or task has its own, read when a graph is
traced (a tf.function traced inside a block keeps the forms it chose).
"""

import contextlib
import contextvars

FORMS = (
    "winograd",
    "conv_gradients",
    "reflect_gather",
    "fused_norm",
    "slice_crop",
    "batched_calls",
    "reflect_concat",
)

_disabled = contextvars.ContextVar("tfcyclegan_kernels_disabled", default=frozenset())
_portable = contextvars.ContextVar("tfcyclegan_kernels_portable", default=False)


@contextlib.contextmanager
def disabled(*forms):
    """Inside this block the named forms (all of `FORMS` if none is named) are off:
    layers traced or run compute their plain forms.

    Args:
        *forms: names from `FORMS`.
    """
    unknown = [form for form in forms if form not in FORMS]
    if unknown:
        raise ValueError(f"Unknown kernel forms {unknown}; known: {list(FORMS)}. Received: {forms}")
    token = _disabled.set(_disabled.get() | frozenset(forms or FORMS))
    try:
        yield
    finally:
        _disabled.reset(token)


@contextlib.contextmanager
def portable_ops():
    """Inside this block layers take the forms every runtime runs as builtin ops:
    what the TFLite exporter traces."""
    token = _portable.set(True)
    try:
        yield
    finally:
        _portable.reset(token)


def portable():
    """Whether a `portable_ops()` block is active in this thread or task."""
    return _portable.get()


def enabled(form):
    """Whether `form` may run here: not disabled, and not a TensorFlow-only form in a
    `portable_ops()` block (where `reflect_concat` is the only one on)."""
    if form not in FORMS:
        raise ValueError(f"Unknown kernel form {form!r}; known: {list(FORMS)}")
    if form in _disabled.get():
        return False
    if form == "reflect_concat":
        return _portable.get()
    return not _portable.get() or form in ("slice_crop", "batched_calls")
