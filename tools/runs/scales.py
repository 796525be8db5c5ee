"""The link scales of the emulated runs (how much slower than the modelled network they run).

Every rate of a run (link capacities, the controller's meters, reservations, floods) is the
model's rate times the scale; times are left alone. Both defaults are 1/10,000 (100 Gb/s ->
10 Mb/s) for two measured reasons (docs/emulation.md): userspace Open vSwitch on a shared 2-core
machine stays far from saturation, and Open vSwitch 3.1's userspace meters at ~1 Gb/s (the
1.2 Tb/s trunks at 1/1,000) were seen to stop passing traffic for good after a flood.
"""

#: training runs and the demo (``tools.runs.training_run``)
DEFAULT_SCALE = 1e-4
#: ``dnctl verify scenario`` and ``dnctl verify isolation``
SCENARIO_LINK_SCALE = 1e-4
