"""Configuration: `.flotilla/config.toml` over the user file over defaults, with env on top.

load_config(repo, env) -> LoadedConfig   .config, .origin(key), .items_with_origin()
validate_config(repo, env) -> list[str]  every problem at once
init_project(repo, project_type)         writes a commented .flotilla/config.toml
render_config(loaded, show_origin)       text for `fleet config`
"""

from flotilla.config.errors import ConfigError
from flotilla.config.init import init_project
from flotilla.config.loader import LoadedConfig, load_config, validate_config
from flotilla.config.render import render_config
from flotilla.config.schema import (
    AgentConfig,
    BusConfig,
    Config,
    LimitsConfig,
    PriceConfig,
    ProjectConfig,
    RetryConfig,
    StoreConfig,
)

__all__ = [
    "AgentConfig",
    "BusConfig",
    "Config",
    "ConfigError",
    "LimitsConfig",
    "LoadedConfig",
    "PriceConfig",
    "ProjectConfig",
    "RetryConfig",
    "StoreConfig",
    "init_project",
    "load_config",
    "render_config",
    "validate_config",
]
