# syntax=docker/dockerfile:1
#
# Labeller production image. One image serves every role:
#   web     - the default CMD below (gunicorn + WhiteNoise for static files)
#   worker  - `celery -A workers.celery worker ...`  (command set in compose.yaml)
#   beat    - `celery -A workers.celery beat ...`    (command set in compose.yaml)
#   migrate - `python manage.py migrate --noinput`   (one-shot, compose.yaml)
#
# torch/torchvision are the CUDA builds from PyPI: the CUDA runtime ships inside
# the wheels, so a plain python base image is enough. On a host with the NVIDIA
# Container Toolkit the worker sees the GPU; everywhere else the same code runs
# on the CPU. Needs BuildKit (the default builder since Docker Engine 23).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------
# Stage 1: build the virtualenv. Kept apart so pip's cache and any build-only
# tooling added here later never reach the runtime image, and so that editing
# application code does not invalidate the (multi-GB) dependency layer.
# --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv "$VIRTUAL_ENV"

COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    pip install -r /tmp/requirements.txt

# --------------------------------------------------------------------------
# Stage 2: runtime.
# --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=labeller.settings.prod \
    LABELLER_DATA_DIR=/var/lib/labeller \
    LABELLER_STATIC_ROOT=/app/staticfiles \
    LABELLER_MEDIA_ROOT=/srv/labeller/media \
    LABELLER_UPLOAD_DIR=/srv/labeller/uploads \
    TORCH_HOME=/var/cache/labeller/torch \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    WEB_CONCURRENCY=3

# opencv-python needs libGL and glib at import time; PyAV bundles ffmpeg.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

# Unprivileged runtime user. The writable directories are created here, owned
# by that user, so that named volumes mounted on them start out with the same
# ownership (Docker copies it into an empty named volume on first mount):
# LABELLER_DATA_DIR (the settings create it on import; beat keeps its schedule
# there), the media root and the resumable-upload folder (both on the shared
# volume mounted at /srv/labeller) and the torch weights cache.
RUN groupadd --system --gid "${APP_GID}" labeller \
 && useradd --system --uid "${APP_UID}" --gid labeller \
        --home-dir /home/labeller --create-home --shell /usr/sbin/nologin labeller \
 && install -d -o labeller -g labeller -m 0750 \
        /srv/labeller /srv/labeller/media /srv/labeller/uploads \
        /var/lib/labeller /var/cache/labeller/torch

COPY --from=builder /opt/venv /opt/venv

# Application code stays root-owned: the app user can read it, not change it.
WORKDIR /app
COPY . /app

# Collect static files at build time with throw-away settings (nothing here is
# a real secret and none of it persists in the image's environment), then
# prove the native libraries load so a missing system package fails the build
# instead of the first task.
RUN LABELLER_SECRET_KEY=collectstatic-at-build-time-not-a-secret \
    LABELLER_ALLOWED_HOSTS=localhost \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    REDIS_URL=redis://127.0.0.1:6379/0 \
    LABELLER_FEATURE_WEIGHTS=none \
    python manage.py collectstatic --noinput \
 && rm -f /tmp/collectstatic.sqlite3 \
 && python -c "import cv2, av, faiss, torch, torchvision"

USER ${APP_UID}:${APP_GID}

EXPOSE 8000

# gthread workers: a slow client (a large video upload) occupies one thread,
# not a whole process, and the worker's heartbeat keeps running while it
# does, so --timeout only kills a truly stuck process. The timeout is still
# generous for synchronous work on big requests; tune with GUNICORN_TIMEOUT.
# The heartbeat file lives in /dev/shm (tmpfs) so a slow overlay filesystem
# cannot trigger false timeouts. --max-requests recycles workers to bound
# memory growth from the ML libraries. Put a buffering reverse proxy (TLS) in
# front for uploads from the internet; gunicorn then trusts its
# X-Forwarded-* headers for the IPs in FORWARDED_ALLOW_IPS (gunicorn reads that
# variable itself).
CMD ["sh", "-c", "exec gunicorn labeller.wsgi:application --bind 0.0.0.0:8000 --workers \"${WEB_CONCURRENCY:-3}\" --worker-class gthread --threads \"${GUNICORN_THREADS:-4}\" --timeout \"${GUNICORN_TIMEOUT:-300}\" --graceful-timeout 60 --keep-alive 5 --max-requests 1000 --max-requests-jitter 100 --worker-tmp-dir /dev/shm --access-logfile - --error-logfile -"]
