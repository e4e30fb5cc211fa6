#!/usr/bin/env bash
# Build the local stand-in for python:3.12-slim that the image tests build on,
# unless podman already has it.
#
# No container registry is needed: debootstrap installs Debian bookworm with its
# Python 3.11 from the Debian package mirror, and `podman import` turns the tree
# into an image. The image then behaves like the official one where the
# Dockerfiles rely on it: `python` and `pip` are on PATH, pip may install into the
# system interpreter, and useradd exists. It also carries /etc/pip.conf, which
# points pip at wheels that the test mounts at /wheels, so builds need no network.
#
# Run as root. Takes about a minute on first use; later runs return at once.
set -euo pipefail

IMAGE="${PYTHON_BASE_IMAGE:-localhost/python-base:bookworm}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

if podman image exists "$IMAGE"; then
  echo "$IMAGE already exists"
  exit 0
fi

ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT

debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3 \
  bookworm "$ROOTFS"

# Debian marks its interpreter as externally managed (PEP 668); the official
# image does not, and its Dockerfiles install with plain `pip install`.
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf pip3 "$ROOTFS/usr/bin/pip"
cat >"$ROOTFS/etc/pip.conf" <<'CONF'
[global]
no-index = true
find-links = /wheels
CONF
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

tar -C "$ROOTFS" -c . | podman import --change 'CMD ["python3"]' - "$IMAGE"
echo "built $IMAGE"
