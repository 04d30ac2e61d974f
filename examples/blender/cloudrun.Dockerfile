# The framefarm Cloud Run worker image with Blender added:
#   python -m infra.cloudrun.image --dockerfile examples/blender/cloudrun.Dockerfile --out build/blender-worker
#   gcloud builds submit build/blender-worker --tag REGION-docker.pkg.dev/PROJECT/framefarm/blender-worker
# `framefarm-worker` is the framefarm Cloud Run image (infra/cloudrun/Dockerfile, Debian), built as
# the first stage of the same build, so Debian's blender package is one apt-get away.
FROM framefarm-worker

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends blender \
    && rm -rf /var/lib/apt/lists/*
USER framefarm
