"""User-facing errors: the CLI prints their message on one line and exits non-zero, without a traceback."""


class FusionProxyError(Exception):
    """Base of every error caused by the user's input or set-up rather than by a bug."""


class MissingWeightsError(FusionProxyError, FileNotFoundError):
    """A weight file is missing; the message names the expected path and the command that provides it."""
