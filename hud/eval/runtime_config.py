"""`RuntimeConfig` and its parts (defined in `hud.types`)."""

from hud.types.runtime_config import (
    ComposeProject,
    RuntimeConfig,
    RuntimeGPU,
    RuntimeLimits,
    RuntimeResources,
    RuntimeTPU,
)

__all__ = [
    "ComposeProject",
    "RuntimeConfig",
    "RuntimeGPU",
    "RuntimeLimits",
    "RuntimeResources",
    "RuntimeTPU",
]
