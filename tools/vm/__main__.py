"""``python -m tools.vm``: the VM from a shell (used by ``tools/setup.sh`` and ``make vm-image``).

- ``need``: exit 0 when ``--vm auto`` means a VM on this host (prints what the kernel lacks), 1 when not.
- ``status [--json]``: the host kernel's features, whether a VM is needed, the image (cached or not).
- ``build [--if-needed]``: build the image unless cached (``--if-needed``: only when a VM is needed).
- ``run [--timeout S] [--out DIR] COMMAND``: boot, run COMMAND (bash) in the guest, print its
  output, exit with its exit code; ``--out`` keeps what the command wrote to ``$DETNET_OUT``.

Errors are one line on stderr and exit 1. SIGTERM and Ctrl-C tear a running guest down.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from tools.vm.guest import Guest, GuestError
from tools.vm.host import host_kernel, wants_vm
from tools.vm.image import ImageError, cached_image, ensure_image, missing_host_tools


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.vm", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    sub.add_parser("need", help="exit 0 when --vm auto means a VM here")
    st = sub.add_parser("status", help="host kernel features and the image")
    st.add_argument("--json", action="store_true")
    b = sub.add_parser("build", help="build and cache the image")
    b.add_argument("--if-needed", action="store_true", help="only when this host needs a VM")
    r = sub.add_parser("run", help="run a command in a fresh guest")
    r.add_argument("--timeout", type=float, default=600)
    r.add_argument("--out", type=Path, help="folder that keeps what the command writes to $DETNET_OUT")
    r.add_argument("command")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # `kill` tears the guest down too
    try:
        if args.action == "need":
            missing = host_kernel().missing()
            print("VM needed: this kernel lacks " + ", ".join(missing) if missing
                  else "no VM needed: this kernel has openvswitch, netem and taprio")
            return 0 if missing else 1
        if args.action == "status":
            feats = host_kernel()
            img = cached_image()
            status = {"kernel": feats.to_dict(), "vm_auto": wants_vm("auto", feats),
                      "image": img.manifest if img else None, "image_folder": str(img.folder) if img else None,
                      "missing_host_tools": missing_host_tools()}
            print(json.dumps(status, indent=2) if args.json else
                  f"kernel lacks: {', '.join(feats.missing()) or 'nothing'}; --vm auto: "
                  f"{'VM' if status['vm_auto'] else 'host'}; image: "
                  f"{img.folder if img else 'not built'}")
            return 0
        if args.action == "build":
            if args.if_needed and not wants_vm("auto"):
                print("vm: this kernel has openvswitch, netem and taprio: no image needed")
                return 0
            img = ensure_image()
            print(f"vm: image {img.key} (kernel {img.kernel_release}, built in "
                  f"{img.manifest['build_seconds']:.0f} s) at {img.folder}")
            return 0
        with Guest(ensure_image(), out_dir=args.out) as g:
            res = g.run(args.command, timeout=args.timeout)
            sys.stdout.write(res.stdout)
            sys.stderr.write(res.stderr)
            print(f"vm: boot {g.boot_seconds:.1f} s, command {res.seconds:.1f} s, exit {res.returncode}",
                  file=sys.stderr)
            return res.returncode
    except (ImageError, GuestError) as e:
        print(f"vm: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
