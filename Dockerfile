# The operator image: runtime dependencies only. No dev/ tooling, no test extras, no build tools.
#
# The base is pinned by the digest of its multi-platform index, so every build starts from the same
# bytes; a registry refuses the pull if they differ. The digest is the one the Docker Official
# Images record for the tag (docker-library/repo-info, repos/python/remote/3.11-slim-bookworm.md,
# commit bc9bbb47: Python 3.11.16 on Debian bookworm, built 2026-08-25). It was read from that
# record, not pulled: no registry answers from the machine this was written on. To move it, run
#   docker buildx imagetools inspect python:3.11-slim-bookworm
# and replace the digest; the tag stays as documentation (the digest wins).
ARG BASE=python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02

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

# Run: the base image plus the virtualenv, nothing else from the build stage; not root.
FROM ${BASE}
ENV PATH=/opt/secretrotation/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/secretrotation /opt/secretrotation
USER 65532:65532
ENTRYPOINT ["secretrotation"]
