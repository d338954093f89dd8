"""Errors the runner turns into one clear line (run.py prints them and exits with 2)."""


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the fix."""


class RunLocked(ConfigError):
    """Another process is computing the record of this name right now."""


class TrainingDiverged(RuntimeError):
    """Non-finite steps in a row, or a loss above the divergence bound for a few steps; the message
    names the step, method and last loss. `result` holds the training done so far (for the record)."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class DamagedFileError(ConfigError):
    """A checkpoint or record that exists but cannot be read; the message names the file and the fix."""


class DataMissingError(FileNotFoundError):
    """A data or model file the run needs is absent; the message names the prepare command."""


class DataCorruptError(DataMissingError):
    """A data file is there but damaged (unreadable, or cut short); the message names it and the fix."""


class ModelMissingError(DataMissingError):
    """Model weights are not available here; the message names the fix. A DataMissingError
    (hence also an OSError), so the runner reports it in one line like missing data."""
