"""The synthetic society: people and households, firms, the social graph."""
