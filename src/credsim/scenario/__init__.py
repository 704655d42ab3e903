"""Scenarios: Pydantic models, TOML loading and the shipped presets."""

from credsim.scenario.load import load_scenario, preset_names, scenario_to_toml
from credsim.scenario.model import Scenario

__all__ = ["Scenario", "load_scenario", "preset_names", "scenario_to_toml"]
