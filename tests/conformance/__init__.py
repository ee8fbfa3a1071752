"""Example resources for the hub's profiles (valid ones; tests break them one rule at a time)."""
