"""The one error type for bad stack settings.

Every check on settings raises this, so the CLI and the Pulumi program can report one line that names
the setting, instead of a traceback.
"""


class SettingsError(ValueError):
    """A stack setting is missing, malformed or inconsistent with another one."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"setting '{setting}': {problem}")
        self.setting = setting
        self.problem = problem
