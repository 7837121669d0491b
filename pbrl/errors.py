"""``UserError``: the base of every error a user can fix, so the command line catches them in one place.

It lives in a module of its own with no imports, so ``pbrl.cli`` can catch the errors of modules it loads only on
first use (the store, env construction) without loading them first.
"""


class UserError(ValueError):
    """A mistake a user can fix (a flag, a file, a run directory in the wrong state); the message is one line that
    says what is wrong and what to do. ``pbrl`` prints it as it is and exits with 2."""


class UsageError(UserError):
    """A mistake on the command line, reported as one line."""
