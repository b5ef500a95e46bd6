"""Data for hosts with NVIDIA GPUs (the `gpu` group; `nvidia = True` in a host's data does the same)."""

# GPUs lpnode transcodes on (-nvidia): "all", or device ids such as "0,1".
lpnode_gpus = "all"

# The driver branch, pinned and held (apt-mark hold) so an unattended upgrade cannot change the
# NVENC session cap or drop the NVENC patch. Ubuntu: nvidia-driver-<branch>-server; Debian:
# the branch of the release's non-free nvidia-driver (Debian 12: 535).
nvidia_driver_branch = "550"

# Reboot when the driver changed (the new kernel module loads only then). Set True to reboot by
# hand, e.g. during a maintenance window; lpnode's GPU preflight fails until you do.
nvidia_skip_reboot = False

# keylase/nvidia-patch lifts the consumer-card NVENC session cap. Opt-in: it rewrites a driver
# library. The deploy first runs `patch.sh -c <driver version>` and stops if it is unsupported.
# Pin the ref to a commit (and give its sha256) so every run uses the same script.
nvidia_nvenc_patch = False
nvidia_nvenc_patch_ref = "master"
nvidia_nvenc_patch_sha256 = None
