"""Errors a user can fix (bad config, data, checkpoint or flag): exit code 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """One or more problems, each a self-contained message naming its place."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class CheckpointError(UserError):
    pass
