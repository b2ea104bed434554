"""`python -m pipelines` runs the `weakfeat pipelines` command group."""

from pipelines.cli import pipelines

if __name__ == "__main__":
    pipelines(prog_name="python -m pipelines")
