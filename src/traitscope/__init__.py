"""traitscope: extract, validate, monitor and steer behavioural trait vectors in language models.

Layer-index convention (used everywhere): layer ``i`` is the output of decoder block ``i``
(0-based), which equals ``hidden_states[i + 1]`` of a Hugging Face forward pass with
``output_hidden_states=True``. Sign convention: a larger projection means more of the trait.
"""

__version__ = "0.1.0"

from traitscope.errors import TraitscopeError

__all__ = ["TraitscopeError", "__version__"]
