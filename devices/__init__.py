"""Device profiles (TOML). Installed as the data package ``edgeml.profiles``."""
