"""Ships the device profiles in devices/ inside the installed package as `edgeml.profiles`.

pyproject.toml holds all metadata; this file only maps the top-level data folder into the package,
which pyproject's declarative `packages.find` cannot express together with discovery.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["edgeml", "edgeml.*"]) + ["edgeml.profiles"],
    package_dir={"edgeml.profiles": "devices"},
    package_data={"edgeml.profiles": ["*.toml"],
                  # templates/ansible: the playbook of `edgeml deploy --inventory` / `--export-ansible`
                  "edgeml": ["py.typed", "templates/*", "templates/ansible/*", "templates/ansible/*/*",
                             "templates/ansible/roles/*/*/*"]},
)
