"""The build's own failures: each carries a one-line message the user can act on."""


class BuildError(Exception):
    """A build that cannot go on; the message tells the user what to do."""


class Stopped(Exception):
    """SIGTERM: the build stops, its partial folders are removed, nothing is published."""
