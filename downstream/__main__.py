"""`python -m downstream` runs the `weakfeat downstream` command group."""

from downstream.cli import downstream

if __name__ == "__main__":
    downstream(prog_name="python -m downstream")
