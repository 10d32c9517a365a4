"""Capture and intervention hooks on named sites (residual, attn_out, mlp_out, k, v)."""

from traitscope.hooks.core import HookFn, SiteKey, StopForward, active_hook_count, hooked, stop_after

__all__ = ["HookFn", "SiteKey", "StopForward", "active_hook_count", "hooked", "stop_after"]
