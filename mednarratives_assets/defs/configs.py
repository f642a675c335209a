"""Launchpad configs made from the stages' settings dataclasses, so that each setting is declared once:
its default, and its doc and bounds as the field's description.

    NarrativesConfig = config_class(NarrativeSettings, "NarrativesConfig", "How narratives are cut.")

    def narratives(context, config: NarrativesConfig, ...):
        settings = settings_from(config, NarrativeSettings)  # a ValueError names a bad setting

The config holds no bounds of its own: a value out of bounds reaches the stage, whose `validated()`
names the setting, the value and the rule.
"""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from mednarratives_assets.stage_settings import Setting, declared_settings

Settings = TypeVar("Settings")


def config_class(
    settings_cls: type,
    name: str,
    doc: str,
    *,
    exclude: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
    base: type[dg.Config] = dg.Config,
) -> type[dg.Config]:
    """A dg.Config named `name` with one field per setting of `settings_cls` except `exclude`, plus
    `extra`: fields the stage lacks, each declared with `stage_settings.setting(default, doc)` (its
    type is its default's). `base` dg.ConfigurableResource makes it a resource's fields."""
    declared = {setting.name: setting for setting in declared_settings(settings_cls)}
    excluded = set(exclude)
    if excluded - declared.keys():
        unknown = ", ".join(sorted(excluded - declared.keys()))
        raise ValueError(f"{settings_cls.__name__} has no setting {unknown} to exclude")
    shown = [setting for field_name, setting in declared.items() if field_name not in excluded]
    for field_name, field in (extra or {}).items():
        if field_name in declared:
            raise ValueError(f"{settings_cls.__name__} declares {field_name} already: it is no extra field")
        shown.append(Setting.from_field(field_name, type(field.default), field))
    annotations = {setting.name: setting.kind for setting in shown}
    pydantic_fields = {
        setting.name: Field(default=setting.default, description=setting.description) for setting in shown
    }
    return type(name, (base,), {"__doc__": doc, "__annotations__": annotations, **pydantic_fields})


def settings_from(
    config: dg.Config, settings_cls: type[Settings], defaults: Mapping[str, Any] | None = None
) -> Settings:
    """The stage's settings from `config`, validated (a ValueError names a bad one). Extra config
    fields are left out; `defaults` give settings the config does not carry (the config's own
    value wins where it has one), e.g. {"dense_loss": False} for a config without that field."""
    names = {setting.name for setting in declared_settings(settings_cls)}
    given = {name: value for name, value in config.model_dump().items() if name in names}
    return settings_cls(**{**(defaults or {}), **given}).validated()
