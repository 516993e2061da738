"""The DRM ioctls the model drives, with their numbers and permission flags.

Numbers: linux ``include/uapi/drm/drm.h`` (core, ``DRM_IOCTL_BASE`` 'd') and
``include/uapi/drm/amdgpu_drm.h`` (driver ioctls, ``DRM_COMMAND_BASE`` 0x40
plus ``DRM_AMDGPU_*``).  Flags: ``drm_ioctls[]`` in
``drivers/gpu/drm/drm_ioctl.c`` and ``amdgpu_ioctls_kms[]`` in
``drivers/gpu/drm/amd/amdgpu/amdgpu_drv.c``; flag values from
``include/drm/drm_ioctl.h`` ``enum drm_ioctl_flags``.  ``DRM_UNLOCKED`` is left
out: it is about locking, not permission.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class DrmFlag(enum.IntFlag):
    """enum drm_ioctl_flags (include/drm/drm_ioctl.h)."""

    NONE = 0
    AUTH = 1 << 0  # DRM_AUTH
    MASTER = 1 << 1  # DRM_MASTER
    ROOT_ONLY = 1 << 2  # DRM_ROOT_ONLY
    RENDER_ALLOW = 1 << 5  # DRM_RENDER_ALLOW


DRM_COMMAND_BASE = 0x40


class Ioctl(NamedTuple):
    name: str
    nr: int
    flags: DrmFlag


_A, _M, _R = DrmFlag.AUTH, DrmFlag.MASTER, DrmFlag.RENDER_ALLOW

#: The ioctls this model has, by the name its commands use.
IOCTLS = {i.name: i for i in (
    Ioctl("GEM_CLOSE", 0x09, _R),  # DRM_IOCTL_GEM_CLOSE: DRM_RENDER_ALLOW
    Ioctl("GEM_OPEN", 0x0B, _A),  # DRM_IOCTL_GEM_OPEN: DRM_AUTH
    Ioctl("MODE_ATOMIC", 0xBC, _M),  # DRM_IOCTL_MODE_ATOMIC: DRM_MASTER
    Ioctl("AMDGPU_GEM_CREATE", DRM_COMMAND_BASE + 0x00, _A | _R),
    Ioctl("AMDGPU_CS", DRM_COMMAND_BASE + 0x04, _A | _R),
    Ioctl("AMDGPU_INFO", DRM_COMMAND_BASE + 0x05, _A | _R),
    Ioctl("AMDGPU_SCHED", DRM_COMMAND_BASE + 0x15, _M),  # amdgpu_sched_ioctl: DRM_MASTER only
)}


#: by the command name (``AMDGPU_CS`` is the command ``CS``, and ``CS$card`` on the primary node)
BY_OP = {name.removeprefix("AMDGPU_"): i for name, i in IOCTLS.items()}


def flags(op: str) -> DrmFlag:
    """The permission flags of a command's ioctl (NONE for a command that is not an ioctl, e.g. open)."""
    ioctl = BY_OP.get(op.partition("$")[0])
    return ioctl.flags if ioctl is not None else DrmFlag.NONE
