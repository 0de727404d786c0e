"""The insurance year's policy as data (`policy_<year>.toml`) and the pure premium rules."""

from api.policy.model import Policy, available_years, load_policy, load_policy_file

__all__ = ["Policy", "available_years", "load_policy", "load_policy_file"]
