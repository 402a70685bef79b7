"""The Asterisk front: an AMI worker plus the dialplan in asterisk_conf/."""

from adapter.asterisk.settings import AmiSettings, WorkerSettings
from adapter.asterisk.worker import AsteriskWorker, StartupError

__all__ = ["AmiSettings", "AsteriskWorker", "StartupError", "WorkerSettings"]
