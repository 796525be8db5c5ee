"""The emulated network: Open vSwitch bring-up and probe (``ovs``), the Mininet network (``network``),
the controller process (``controller_proc``) and the start/stop protocol (``lifecycle``)."""
