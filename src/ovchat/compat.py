"""What differs between the Python versions pyproject admits (3.10 and later)."""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    StrEnum = enum.StrEnum
else:  # pragma: no cover - Python 3.10, which pyproject still admits

    class StrEnum(str, enum.Enum):
        """enum.StrEnum before 3.11: a member is its value, in str() and f-strings too."""

        def __str__(self) -> str:
            return str(self.value)
