"""Run folders, queries over them and their headline figures."""
