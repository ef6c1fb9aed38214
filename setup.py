"""The package list, which pyproject.toml cannot express: every package found under
notifier/ and workers/, plus sql/ shipped inside the package as notifier.sql.

sql/ stays at the top of the repository, where operators look for it; mapped in as a
package, it is found through importlib.resources from a wheel and from an editable
checkout alike (notifier/db.py).
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["notifier", "notifier.*", "workers", "workers.*"]),
        "notifier.sql",
    ],
    package_dir={"notifier.sql": "sql"},
)
