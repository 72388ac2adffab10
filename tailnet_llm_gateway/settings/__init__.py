"""Stack settings: the typed model (`model`, the root, and one module a part: `services`, `routes`, `clients`,
`sso`, `containers`, `tailnet`, on the field types of `fields`), where they come from (`sources`: a stack file or
the engine's config) and how a mistake is told (`messages`). Nothing past the topology reads them."""

from .containers import ContainerResources
from .model import Settings
from .sources import PROJECT, SECRET_KEYS

__all__ = ["PROJECT", "SECRET_KEYS", "ContainerResources", "Settings"]
