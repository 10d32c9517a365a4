"""Trait definitions: schema, loading (own format and trait-interp layout), bundled traits."""

from traitscope.traits.loader import bundled_dir, bundled_names, load_trait, resolve_trait_path
from traitscope.traits.schema import Scenario, Trait

__all__ = ["Scenario", "Trait", "bundled_dir", "bundled_names", "load_trait", "resolve_trait_path"]
