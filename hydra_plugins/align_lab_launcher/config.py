"""`hydra/launcher=align_lab_local|align_lab_slurm`: hydra-submitit-launcher's queue configs plus
align_lab's keys (see launcher.py); `align_lab_basic`: Hydra's in-process launcher, every job checked
first (basic.py). Registered when Hydra discovers this plugin package."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

TARGET = "hydra_plugins.align_lab_launcher.launcher.StudyLauncher"


@dataclass
class CheckedBasicConf:
    _target_: str = "hydra_plugins.align_lab_launcher.basic.CheckedBasicLauncher"


@dataclass
class StudyLocalConf(LocalQueueConf):
    _target_: str = TARGET
    cluster: str = "local"  # submitit executor
    wait: bool = True  # false: return right after submission (see `python -m align_lab.study status`)


@dataclass
class StudySlurmConf(SlurmQueueConf):
    _target_: str = TARGET
    cluster: str = "slurm"  # submitit executor
    wait: bool = True  # false: return right after submission (see `python -m align_lab.study status`)
    max_num_timeout: int = 3  # requeues on preemption / time limit; the run resumes from its checkpoint


ConfigStore.instance().store(
    group="hydra/launcher", name="align_lab_basic", node=CheckedBasicConf, provider="align_lab"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="align_lab_local", node=StudyLocalConf, provider="align_lab"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="align_lab_slurm", node=StudySlurmConf, provider="align_lab"
)
