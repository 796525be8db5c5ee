"""``dnctl probe``: send time-slotted probes of a reservation, flood best-effort load, capture.

- ``probe send``: paces a reservation's probe datagrams at its tx offsets (``tools.probes.talker``); the
  reservation comes from the controller (``--reservation ID`` with ``--url/--token``) or offline
  from a Schedule JSON file (``--schedule FILE``). Prints the pacing figures; exit 1 when pacing or
  the rate did not hold (the datagrams were still all sent).
- ``probe flood``: best-effort UDP load (iperf3, or a Python sender) at a given rate.
- ``probe capture``: tcpdump with nanosecond kernel timestamps into an ordinary pcap.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tools.cli import CliError
from tools.cli.clientargs import client_from_args
from tools.cli.units import parse_bandwidth
from tools.probes.capture import CaptureError, capture
from tools.probes.probe_format import DEFAULT_PORT
from tools.probes.talker import flood, send


def rate_arg(text: str) -> int:
    try:
        v = parse_bandwidth(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"rate {text!r} must be positive")
    return v


def add_source_args(p: argparse.ArgumentParser, required_id: bool) -> None:
    """``--reservation ID``, ``--schedule FILE``, ``--url``, ``--token``."""
    p.add_argument("--reservation", metavar="ID", required=required_id,
                   help="reservation id (fetched from the controller unless --schedule is given)")
    p.add_argument("--schedule", metavar="FILE.json",
                   help="offline: read reservations and cycle/slot from a Schedule JSON file")
    p.add_argument("--url", default=argparse.SUPPRESS, help="controller REST URL (default $DNCTL_URL or "
                   "http://127.0.0.1:8080)")
    p.add_argument("--token", default=argparse.SUPPRESS, help="API token (default $DNCTL_TOKEN)")


def _load_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise CliError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise CliError(f"{path}: not JSON ({e})") from None


def schedule_meta_of(sched: dict[str, Any]) -> dict[str, Any]:
    """cycle_ns, slot_ns, epoch_ns and links of a Schedule JSON document."""
    try:
        meta = {"cycle_ns": int(sched["cycle_ns"]), "slot_ns": int(sched["slot_ns"]),
                "links": list(sched.get("links") or [])}
    except (KeyError, TypeError, ValueError):
        raise CliError("schedule: missing or bad cycle_ns/slot_ns (not a Schedule JSON document)") from None
    if "epoch_ns" in sched:
        meta["epoch_ns"] = int(sched["epoch_ns"])
    return meta


def _check_reservation(r: Any, where: str) -> dict[str, Any]:
    need = ("id", "period_ns", "frame_bytes", "latency_bound_ns", "tx_offsets_ns")
    if not isinstance(r, dict) or any(k not in r for k in need):
        raise CliError(f"{where}: not a reservation (needs {', '.join(need)})")
    return r


def resolve(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(reservations, schedule_meta) from --schedule (offline) or the controller (--reservation)."""
    rid = getattr(args, "reservation", None)
    if getattr(args, "schedule", None):
        sched = _load_json(args.schedule)
        if not isinstance(sched, dict):
            raise CliError(f"{args.schedule}: not a Schedule JSON object")
        meta = schedule_meta_of(sched)
        res = [_check_reservation(r, args.schedule) for r in sched.get("reservations") or []]
        if rid is not None:
            res = [r for r in res if str(r["id"]) == rid]
            if not res:
                raise CliError(f"{args.schedule}: no reservation {rid!r}")
        return res, meta
    if rid is None:
        raise CliError("give --reservation ID (from the controller) or --schedule FILE.json")
    with client_from_args(args) as api:
        r = api.get(f"/v1/reservations/{rid}")
        sched = api.get("/v1/schedule")
    meta = schedule_meta_of({**{"cycle_ns": r.get("cycle_ns"), "slot_ns": r.get("slot_ns")},
                             **(sched if isinstance(sched, dict) else {})})
    return [_check_reservation(r, f"reservation {rid}")], meta


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="send slotted probes, flood best-effort load, capture packets",
                       description="Probe traffic for verification (see docs/verification.md).")
    ps = p.add_subparsers(dest="probe_cmd", metavar="ACTION")

    q = ps.add_parser("send", help="send a reservation's probes paced at its tx offsets")
    add_source_args(q, required_id=True)
    dst = q.add_mutually_exclusive_group()
    dst.add_argument("--dst", metavar="IP", help="destination IPv4 (default: the reservation's match.ip_dst)")
    q.add_argument("--iface", help="send from this interface (binds to it and its address)")
    q.add_argument("--bind", metavar="IP", help="source address to bind")
    q.add_argument("--port", type=int, default=None, help="UDP destination port (default: match.udp_dst or 47000)")
    n = q.add_mutually_exclusive_group(required=True)
    n.add_argument("--count", type=int, help="datagrams to send")
    n.add_argument("--duration", type=float, help="seconds to send (whole cycles)")
    q.add_argument("--rate", type=rate_arg, help="MISBEHAVE: send this rate (e.g. 50M) instead of the reserved one")
    q.add_argument("--burst", type=int, help="MISBEHAVE: send N periods' datagrams back to back every N periods")
    q.add_argument("--rt", action="store_true", help="pace under SCHED_FIFO (root): far smaller pacing error")
    q.add_argument("--spin", type=int, default=100_000, metavar="NS",
                   help="busy-wait this long before each datagram instead of sleeping (default 100 us; longer "
                        "where timers fire late, e.g. the VM's TCG guest: more CPU, less lateness)")
    q.add_argument("--not-before", type=int, metavar="NS",
                   help="start at the first cycle boundary at or after this CLOCK_REALTIME time in ns (talkers "
                        "given the same one start in the same cycle; default: the next boundary 20 ms from now)")
    q.add_argument("--out", metavar="FILE.json", help="write the talker result (sent count for `verify pcap --talker`)")
    q.add_argument("--json", action="store_true", help="print the talker result as JSON")
    q.set_defaults(func=_send)

    q = ps.add_parser("flood", help="best-effort UDP load at a rate (iperf3, else Python)")
    q.add_argument("--dst", metavar="IP", required=True, help="destination IPv4")
    q.add_argument("--rate", type=rate_arg, required=True, help="rate, e.g. 50M")
    q.add_argument("--duration", type=float, required=True, help="seconds")
    q.add_argument("--port", type=int, default=5201, help="UDP port (iperf3 server port, default 5201)")
    q.add_argument("--length", type=int, default=1400, help="UDP payload bytes (default 1400)")
    q.add_argument("--python", action="store_true", help="use the Python sender even if iperf3 is installed")
    q.add_argument("--bind", metavar="IP", help="source address to bind")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    q.set_defaults(func=_flood)

    q = ps.add_parser("capture", help="capture with nanosecond kernel timestamps (tcpdump)")
    q.add_argument("--iface", required=True, help="interface to capture on")
    q.add_argument("--out", required=True, metavar="FILE.pcap", help="output pcap")
    q.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    q.add_argument("--filter", default="udp", help="BPF filter (default 'udp'; '' for everything)")
    q.add_argument("--snaplen", type=int, default=256, help="bytes kept per frame (default 256)")
    q.add_argument("--count", type=int, help="stop after this many frames")
    q.add_argument("--json", action="store_true", help="print the capture summary as JSON")
    q.set_defaults(func=_capture)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _send(args: argparse.Namespace) -> int:
    if args.count is not None and args.count <= 0:
        raise CliError("--count must be positive")
    if args.duration is not None and args.duration <= 0:
        raise CliError("--duration must be positive")
    if args.burst is not None and args.burst < 1:
        raise CliError("--burst must be at least 1")
    if args.spin < 0:
        raise CliError("--spin must be non-negative")
    res, meta = resolve(args)
    r = res[0]
    match = r.get("match") or {}
    dst = args.dst or match.get("ip_dst")
    if not dst:
        raise CliError("no destination: give --dst (the reservation has no match.ip_dst)")
    port = args.port or match.get("udp_dst") or DEFAULT_PORT
    try:
        out = send(r, meta, dst, int(port), iface=args.iface, bind_ip=args.bind, count=args.count,
                   duration=args.duration, rate=args.rate, burst=args.burst, realtime=args.rt,
                   not_before_ns=args.not_before, spin_ns=args.spin)
    except OSError as e:
        raise CliError(f"cannot send to {dst}:{port}: {e.strerror or e}") from None
    except ValueError as e:
        raise CliError(str(e)) from None
    d = out.to_dict()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(d, f, indent=1)
    if args.json:
        print(json.dumps(d, indent=1))
    else:
        pe = out.pacing_error_ns
        print(f"sent {out.sent} datagrams ({out.sent_ip_bytes} IP bytes) of {out.reservation_id} to {dst}:{port} "
              f"over {out.cycles} cycles")
        print(f"rate {out.achieved_rate_bps / 1e6:.3f} Mb/s of intended {out.intended_rate_bps / 1e6:.3f} Mb/s: "
              f"{'kept' if out.rate_kept else 'NOT KEPT'}")
        print(f"pacing error mean {pe['mean']:.0f} ns, p99 {pe['p99']:.0f} ns, max {pe['max']:.0f} ns; "
              f"{out.late} late (> {out.late_threshold_ns:.0f} ns = 10% of a {out.slot_ns} ns slot): "
              f"{'ok' if out.pacing_ok else 'NOT OK'}")
    return 0 if (out.pacing_ok and out.rate_kept) else 1


def _flood(args: argparse.Namespace) -> int:
    if args.duration <= 0:
        raise CliError("--duration must be positive")
    out = flood(args.dst, args.rate, args.duration, args.port, length=args.length, use_iperf=not args.python,
                bind_ip=args.bind)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        rate = out.get("rate_bps")
        print(f"{out['tool']}: {out.get('packets')} packets, {rate / 1e6:.3f} Mb/s" if rate else
              f"{out['tool']}: failed: {out.get('error')}")
    if out.get("error") or out.get("returncode"):
        print(f"dnctl: flood failed: {out.get('error') or 'iperf3 exit ' + str(out.get('returncode'))}"
              " (is `iperf3 -s` running at the destination? --python needs no server)", file=sys.stderr)
        return 1
    return 0


def _capture(args: argparse.Namespace) -> int:
    if args.duration <= 0:
        raise CliError("--duration must be positive")
    try:
        r = capture(args.iface, args.out, args.duration, args.filter or None, args.snaplen, count=args.count)
    except CaptureError as e:
        raise CliError(str(e)) from None
    if args.json:
        print(json.dumps(r.to_dict(), indent=1))
    else:
        print(f"captured {r.received} frames on {r.iface} into {r.path} in {r.duration_s:g} s "
              f"(timestamps: {r.tstype}, ns; dropped by kernel: {r.dropped_by_kernel})")
    return 0
