"""Stack settings: the typed model (`model`), where they come from (`sources`: a stack file or the
engine's config) and how a mistake is told (`messages`). Nothing past the topology reads them."""

from .model import ContainerLimits, Settings
from .sources import PROJECT, SECRET_KEYS

__all__ = ["PROJECT", "SECRET_KEYS", "ContainerLimits", "Settings"]
