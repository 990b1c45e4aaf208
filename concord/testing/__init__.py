"""Contract test suites every connector's tests subclass (pytest needed; core never imports it).

``SourceContract`` and ``TargetContract`` hold the behaviour core relies on, written once: a
connector's test module subclasses one, provides the fixtures it names (a built connector
against a loopback server, and how to read that server's state), and inherits the tests.
"""

from concord.testing.source_contract import SourceContract
from concord.testing.target_contract import TargetContract

__all__ = ["SourceContract", "TargetContract"]
