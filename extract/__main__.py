"""`python -m extract` runs the `weakfeat extract` command group."""

from extract.cli import extract

if __name__ == "__main__":
    extract(prog_name="python -m extract")
