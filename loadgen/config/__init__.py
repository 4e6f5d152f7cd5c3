"""Configuration: the profile (TOML) read, checked and resolved: keys, schema, reader, --set
overrides, fault targets.
"""
