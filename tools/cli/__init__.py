"""``dnctl``: the command line (``tools.cli.main``), its verbs (``cmd_*``), units, tables and the REST
client's command-line face (``clientargs``: ``--url``/``--token``/``--json``).

This package's own namespace holds only ``CliError``, so a verb or a helper can import it without
pulling in every verb.
"""


class CliError(Exception):
    """A one-line error for the user; ``code`` is the exit status (2: usage or bad input)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code
