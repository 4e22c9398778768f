"""Argument checks shared by the whole package: one spelling of each error.

A leaf module (no TensorFlow, no numpy), so that config.py and the CLI's
`--help` can use it without loading either.
"""

import numbers


def check_int(name, value, minimum, *, owner=None, hint=None):
    """Returns `value` as a Python int if it is an integer >= `minimum`.

    numpy integers are accepted (a count computed with numpy is still a
    count); bools are refused although Python counts them as ints, because
    `epochs=True` is a mistake, never a count of one.

    Args:
        name: the argument's name, as the user typed it.
        value: what the user passed.
        minimum: the smallest value allowed.
        owner: what the argument belongs to (a class or function name),
            named first in the message when the name alone is ambiguous.
        hint: why the bound is what it is, added to the message.

    Returns:
        `int(value)`.

    Raises:
        ValueError: "`name` must be an integer >= minimum. Received:
            name=value", with the owner and hint when given.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum:
        return int(value)
    prefix = f"{owner}: " if owner else ""
    reason = f" ({hint})" if hint else ""
    raise ValueError(
        f"{prefix}`{name}` must be an integer >= {minimum}{reason}. Received: {name}={value!r}"
    )
