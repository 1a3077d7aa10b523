"""Exceptions raised by corex_edu.

Every error names the offending value and the command or setting that fixes it, so a
student can act on the message without reading the source.
"""


class CorexEduError(Exception):
    """Base class of every error that corex_edu raises on purpose."""


class ConfigurationError(CorexEduError, ValueError):
    """An invalid profile, device, notebook id or hyper-parameter."""


class DataNotFoundError(CorexEduError, FileNotFoundError):
    """A data set is missing from the data folder."""


class DataIntegrityError(CorexEduError):
    """A downloaded or converted file is truncated, corrupt or fails its checksum."""


class CheckpointMismatchError(CorexEduError):
    """A checkpoint on disk was saved under a different configuration."""


class NonFiniteLossError(CorexEduError, FloatingPointError):
    """Training produced a NaN or infinite loss."""
