"""The contracts between core and connectors: ``Source`` (pull pages) and ``Target`` (push records).

Core owns them; connectors depend on core's contracts layer (this package, ``errors``,
``redact``, ``secrets``, ``utc``, ``yamlfile``), never on a stage, and core never imports a
connector: it finds one by its ``type`` name in ``registry``. ``concord.testing`` holds the
contract test suites every connector's tests subclass.
"""

from concord.contracts.registry import (
    SOURCE_TYPES,
    TARGET_TYPES,
    build_source,
    build_target,
    source_type,
    target_type,
)
from concord.contracts.sections import (
    EntityConfig,
    Exclusion,
    ShardSpec,
    SourceConfig,
    TargetConfig,
)
from concord.contracts.source import (
    Checkpoint,
    CountingSource,
    ExcludingSource,
    Page,
    RevisitingSource,
    Source,
    SourceType,
    Trigger,
    Window,
    WindowCount,
)
from concord.contracts.target import (
    ArchivingTarget,
    MergingTarget,
    ObjectKind,
    PropertySpec,
    PropertyState,
    PropertyTarget,
    PushOutcome,
    PushRecord,
    ReadingTarget,
    RemoteRecord,
    Supersession,
    Target,
    TargetType,
)

__all__ = [
    "SOURCE_TYPES",
    "TARGET_TYPES",
    "ArchivingTarget",
    "Checkpoint",
    "CountingSource",
    "EntityConfig",
    "ExcludingSource",
    "Exclusion",
    "MergingTarget",
    "ObjectKind",
    "Page",
    "PropertySpec",
    "PropertyState",
    "PropertyTarget",
    "PushOutcome",
    "PushRecord",
    "ReadingTarget",
    "RemoteRecord",
    "RevisitingSource",
    "ShardSpec",
    "Source",
    "SourceConfig",
    "SourceType",
    "Supersession",
    "Target",
    "TargetConfig",
    "TargetType",
    "Trigger",
    "Window",
    "WindowCount",
    "build_source",
    "build_target",
    "source_type",
    "target_type",
]
