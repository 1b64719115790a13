"""Devices: profiles, offline bundles, and deployment over SSH (see edgeml/commands/devices|bundle|deploy)."""

from edgeml.device.profiles import DeviceProfile, ProfileError, get_profile, load_profiles

__all__ = ["DeviceProfile", "ProfileError", "get_profile", "load_profiles"]
