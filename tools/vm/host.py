"""Whether this host's kernel has what the emulation needs, and so what ``--vm auto`` means.

Why: the emulation wants the kernel OVS datapath, ``netem`` (propagation on links) and ``taprio``
(802.1Qbv gates). Users' machines usually have them, CI boxes like this one may not; a VM with
Debian's stock kernel (``tools.vm.guest``) is used only where one is missing.

The probes are those of ``topologies.machine`` (throw-away network namespaces; need root, so a
non-root host reports them missing).

>>> wants_vm("auto", KernelFeatures(openvswitch=True, netem=True, taprio=True))
False
>>> wants_vm("auto", KernelFeatures(openvswitch=True, netem=False, taprio=True))
True
>>> wants_vm("off", KernelFeatures(openvswitch=False, netem=False, taprio=False))
False
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from topologies.machine import kernel_datapath_available, qdisc_works, taprio_works

__all__ = ["VM_MODES", "KernelFeatures", "host_kernel", "wants_vm"]

#: the values of every emulation verb's ``--vm``
VM_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class KernelFeatures:
    """The kernel features the emulation uses, each True when this kernel has it."""

    openvswitch: bool   # the openvswitch module is loaded or loadable (kernel datapath)
    netem: bool         # tc netem (propagation delay on links)
    taprio: bool        # tc taprio (802.1Qbv gate control lists)

    def missing(self) -> list[str]:
        """The missing features by name ('openvswitch module', 'sch_netem', 'sch_taprio')."""
        names = {"openvswitch": "openvswitch module", "netem": "sch_netem", "taprio": "sch_taprio"}
        return [names[k] for k, v in asdict(self).items() if not v]

    def to_dict(self) -> dict:
        return {**asdict(self), "missing": self.missing()}


def host_kernel() -> KernelFeatures:
    """Probe this host's kernel (a second or so: three throw-away namespaces)."""
    return KernelFeatures(openvswitch=kernel_datapath_available(),
                          netem=qdisc_works("netem delay 1ms"),
                          taprio=taprio_works())


def wants_vm(mode: str, features: KernelFeatures | None = None) -> bool:
    """Whether ``--vm mode`` runs the emulation in a VM: 'on' yes, 'off' no, 'auto' when the host
    kernel misses a feature (``features`` defaults to probing this host)."""
    if mode not in VM_MODES:
        raise ValueError(f"--vm must be one of {', '.join(VM_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode == "on"
    return bool((features or host_kernel()).missing())
