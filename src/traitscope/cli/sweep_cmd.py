"""`traitscope sweep` (placeholder until the sweep runner lands)."""
