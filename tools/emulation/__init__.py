"""The emulated network: Open vSwitch bring-up and probe (``ovs``), the Mininet network (``network``),
the controller process (``controller_proc``), the controller + emulation stack (``stack``), the keeper of
processes in hosts (``procs``), the start/stop protocol (``lifecycle``) and the progress logger
(``progress``)."""
