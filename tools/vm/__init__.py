"""A VM with Debian's stock kernel for the kernel features this host lacks (issue 11).

- ``tools.vm.host``: does this kernel have the openvswitch module, netem and taprio; what
  ``--vm auto|on|off`` means here (``wants_vm``).
- ``tools.vm.image``: the guest image (kernel, busybox initramfs, ext4 root) built from Debian's
  packages by ``recipe/``, cached under ``.cache/vm/<hash of the recipe>`` (``ensure_image``).
- ``tools.vm.guest``: ``with Guest(image) as g: g.run(cmd)``: qemu (TCG), the repository shared
  read-only at ``/repo``, outputs back through ``/out``, everything torn down on every exit path.
- ``python -m tools.vm need|status|build|run``: the same from a shell (``make setup``, ``make vm-image``).

See docs/vm.md.
"""
