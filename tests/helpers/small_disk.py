"""A small real disk for full-disk tests: a tmpfs mounted in a user namespace (`unshare -rm`)."""
import shutil
import subprocess


def tmpfs_available() -> bool:
    """Whether this machine lets an unprivileged process mount a tmpfs in its own namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0
