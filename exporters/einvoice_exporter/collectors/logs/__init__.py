"""The log scanner shared by the `logfile` and `nginx` kinds: a pattern library (patterns.yaml), a
multi-pattern engine that scans whole buffers (Hyperscan when installed, Python's `re` otherwise),
file following with rotation and persistent positions, and the journal and kernel-log sources.

Python looks only at the rare lines a pattern matched; counting lines and finding candidates happen
in C over whole buffers. Nothing here is imported when a configuration is only validated, except
`library` (pattern models and the YAML file, standard library and pydantic only).
"""
