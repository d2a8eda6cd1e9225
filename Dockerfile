# The operator image: runtime dependencies only. No dev/ tooling, no test extras, no build tools.
# The base is a tag, not a digest: pin it (python:3.11-slim-bookworm@sha256:...) where images
# must be reproducible; the tag follows Debian and Python security updates.
ARG BASE=python:3.11-slim-bookworm

# Build: install the operator and its runtime dependencies into a virtualenv of their own.
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# --without-pip: the virtualenv holds nothing but the operator and what it imports at run time.
RUN python -m venv --without-pip /opt/secretrotation \
 && pip --python /opt/secretrotation/bin/python install . \
 && /opt/secretrotation/bin/python -c "import secretrotation.adapters.cli"

# Run: the base image plus that virtualenv; no sources, no build backend, not root.
FROM ${BASE}
ENV PATH=/opt/secretrotation/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/secretrotation /opt/secretrotation
USER 65532:65532
ENTRYPOINT ["secretrotation"]
