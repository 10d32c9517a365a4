"""The dashboard (`traitscope view`): a FastAPI app over a run root with a self-contained
front end in ``static/`` (plain HTML/JS, hand-drawn SVG charts, no CDN)."""

from traitscope.web.app import create_app, serve

__all__ = ["create_app", "serve"]
