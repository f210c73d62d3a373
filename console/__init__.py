"""The daemon: CLI, runtime, procedure, interlocks, alarms, records, configuration."""

__version__ = "0.1.0"
