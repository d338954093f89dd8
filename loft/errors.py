"""Errors the runner turns into one clear line (run.py prints them and exits with 2)."""


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the fix."""


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite steps; the message names the step, method and last finite loss."""


class DamagedFileError(ConfigError):
    """A checkpoint or record that exists but cannot be read; the message names the file and the fix."""
