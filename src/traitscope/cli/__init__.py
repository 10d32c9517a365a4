"""The traitscope command line."""
