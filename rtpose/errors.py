"""Package exceptions: every user-facing error is an ``RtposeError`` with a one-line message."""


class RtposeError(Exception):
    """Base class of the errors that scripts report as one line and a non-zero exit."""


def first_line(error: BaseException) -> str:
    """An exception's message in one line (its type's name when it has none), to quote a
    library's error inside a one-line ``RtposeError``."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class ModelNotFoundError(RtposeError):
    """No weights file was given and none of the default locations holds one."""


class WeightsError(RtposeError):
    """A weights file is missing, unreadable, corrupt, or does not fit the architecture."""


class ConversionError(RtposeError):
    """A foreign model file (frozen graph, Caffe model) cannot be converted."""


class FetchError(RtposeError):
    """A download failed, or a fetched file is not the expected one."""
