"""The data plane as pure programs (no os-ken, no Mininet, no sockets).

Every switch-side decision of the controller lives here: the OpenFlow translation of a
reservation and of a tenant's best effort, the frame layouts the controller and the probes build,
best-effort routing, and the programs (ordered phases of per-switch changes with a barrier between
phases) that install, remove, reroute (make-before-break), resynchronise and resize. The os-ken
shim (``controller.ofshim``) only turns these specs into messages and sends them.
"""
