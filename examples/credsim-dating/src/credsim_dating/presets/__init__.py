"""The presets of credsim-dating: each `<name>.toml` in this folder is one."""
