"""The one error type users see.

Anything a user can get wrong (a model alias, a layer spec, a trait file) raises
:class:`TraitscopeError` with a one-line message naming the value, where it came from and what
would be valid. The CLI prints that line and exits with code 2; it never shows a traceback.
"""


class TraitscopeError(ValueError):
    """Bad input: the message is a single line fit to show a user as-is."""
