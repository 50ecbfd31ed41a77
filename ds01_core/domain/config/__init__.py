"""The configuration file: its schema, how it is read, and how it is checked as a whole.

A file is accepted or refused as a whole. Every problem is reported with its path in the file
(``limits.groups.student.max_gpu_equivalents: expected a number, got 'two'``), so an admin fixes
them all in one go; the daemon keeps running on its last good configuration meanwhile.

- :mod:`.schema`: the attrs classes, one per section, and :class:`Config`;
- :mod:`.checks`: what every value of a type must be (finite, in range, an absolute path);
- :mod:`.converter`: the one strict cattrs converter and its hooks;
- :mod:`.validation`: the checks that span fields;
- :mod:`.loader`: finding, reading and building the file;
- :mod:`.errors`: :class:`ConfigProblem` and :class:`ConfigError`.

The names below are the package's public ones: ``from ds01_core.domain.config import Config``.
"""

from ds01_core.domain.config.checks import AbsPath
from ds01_core.domain.config.converter import (
    SectionPath,
    converter,
    make_converter,
    section_problems,
    structure_section,
    unstructure,
)
from ds01_core.domain.config.errors import ConfigError, ConfigProblem
from ds01_core.domain.config.loader import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    build_config,
    load_config,
    plugin_selection,
    read_config_file,
    resolve_config_path,
)
from ds01_core.domain.config.schema import (
    BUILTIN_LIMITS,
    LIMIT_KEYS,
    ORIGINS,
    AllocationConfig,
    ApiConfig,
    BareMetalConfig,
    Config,
    DetectionConfig,
    EnforcementConfig,
    GatewayConfig,
    GpuConfig,
    GroupLimits,
    HealthConfig,
    LifecycleConfig,
    LimitsConfig,
    LimitSet,
    OriginPolicy,
    Override,
    PathsConfig,
    PluginsConfig,
    PrivacyConfig,
    SimulatedGpuConfig,
    UserLimits,
)
from ds01_core.domain.config.validation import validate

__all__ = [
    "BUILTIN_LIMITS",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "LIMIT_KEYS",
    "ORIGINS",
    "AbsPath",
    "AllocationConfig",
    "ApiConfig",
    "BareMetalConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DetectionConfig",
    "EnforcementConfig",
    "GatewayConfig",
    "GpuConfig",
    "GroupLimits",
    "HealthConfig",
    "LifecycleConfig",
    "LimitSet",
    "LimitsConfig",
    "OriginPolicy",
    "Override",
    "PathsConfig",
    "PluginsConfig",
    "PrivacyConfig",
    "SectionPath",
    "SimulatedGpuConfig",
    "UserLimits",
    "build_config",
    "converter",
    "load_config",
    "make_converter",
    "plugin_selection",
    "read_config_file",
    "resolve_config_path",
    "section_problems",
    "structure_section",
    "unstructure",
    "validate",
]
