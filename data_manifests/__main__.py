"""`python -m data_manifests` runs the `weakfeat data` command group."""

from data_manifests.cli import data

if __name__ == "__main__":
    data(prog_name="python -m data_manifests")
