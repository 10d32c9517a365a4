"""Loading causal LMs (bundled GGUF aliases, local dirs, hub ids) and their hook-site tables."""

from traitscope.models.loader import LoadedModel, cached_status, load_model, wrap_model
from traitscope.models.registry import BUNDLED, DEFAULT_MODEL, cache_root
from traitscope.models.sites import SITE_TABLES, SITES, get_module, site_table

__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "SITES",
    "SITE_TABLES",
    "LoadedModel",
    "cache_root",
    "cached_status",
    "get_module",
    "load_model",
    "site_table",
    "wrap_model",
]
