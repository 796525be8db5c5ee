"""802.1Qbv gates on the emulation's links: ``taprio`` on every port that carries reservations, kept
equal to the controller's schedule (docs/gates.md, "Gates on the emulation's links").

Why: the slot model promises that reserved frames never wait for best effort. A priority queue
keeps that promise only up to the one best-effort frame already on the wire; the time-aware gates
of 802.1Qbv keep it whole (best effort closes a guard band of one frame before every reserved
window). Where the kernel has ``sch_taprio`` (Debian's stock kernel: the VM, docs/vm.md) the
emulation's ports get the gates the schedule implies, and a ``GateKeeper`` keeps them so:

- **which ports**: every directed link a reservation's path (or protection path) crosses, on the
  egress interface of its switch (``s{dpid}-eth{port}``); a port whose last reservation went keeps
  its taprio with one open best-effort entry (``ports_open``) rather than losing it;
- **which list**: ``schedules.gcl.gate_control_list`` of the controller's ``GET /v1/schedule``,
  as ``schedules.taprio.taprio_config`` makes it a qdisc (two traffic classes, the guard band of
  ``guard_band_bytes`` at the link's rate). The schedule must describe the emulated link: the
  controller schedules the miniature (``tools.emulation.miniature``: rates x ``link_scale``, its
  own slot), so its ``capacity_bps`` is the rate the link is shaped to. A port whose schedule
  rate differs from the emulated rate by more than 1% is not gated (an error naming both);
- **reserved frames into the reserved class**: the controller marks them PCP 7 at their ingress
  (``controller.dataplane.translation.RESERVED_PCP``); a ``clsact`` egress filter on the port
  (``flower vlan_prio 7 action skbedit priority 7 queue_mapping 1``: flower reads the tag inline or
  as the kernel datapath's metadata) gives them skb priority 7 and TX queue 1, taprio's queue of
  traffic class 1, and every other frame priority 0 and queue 0 (``matchall``). The queue is set,
  not left to the kernel: a frame crossing veth pairs keeps its sender's socket, and the kernel
  sends it on the TX queue that socket last used, whatever its priority (measured in the VM: a
  best-effort flood in the reserved queue and a reservation in best effort's, on every port of their
  paths). The veths need two TX queues
  (``Emulation(tx_queues=2)`` creates them so);
- **the link under the gate**: Linux runs the root qdisc last, so the emulation's shaping and
  propagation (``topologies.emulated.tc_batch``: HTB at the link's rate, netem with its delay)
  cannot stay above the gate: each of taprio's two queues gets ``netem delay D rate R`` instead
  (the same delay and rate, serialisation modelled by netem), and the gate schedule starts
  ``D`` later (``base-time`` = D mod the cycle): the gate opens when the frames sent in the slot
  come out of the fibre, and they reach the next switch when the schedule says;
- **kept equal**: the keeper applies the gates at start, then polls the controller's
  ``/v1/events`` and re-applies after every event that can change the schedule (admissions,
  releases, modifications, reroutes, link events), and **reads every gated port back** after each
  apply, one cycle later (``tc qdisc show`` parsed by ``schedules.taprio.parse_taprio_show``,
  ``compare``, and the list must be in force, not only pending: without a schedule in force taprio
  opens every gate): every difference is logged and counted (``summary()``: ``readback_equal``, ``differences``).

``ungate()`` takes the gates off again and gives the ports back the emulation's own shaping.

The functions above ``GateKeeper`` are pure (data and text in, data and text out); the keeper runs
``tc`` and talks to the controller. No Mininet, no os-ken.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from controller.dataplane.translation import RESERVED_PCP
from schedules.gcl import GCLError, gate_control_list
from schedules.taprio import TaprioConfig, TaprioError, compare, parse_taprio_show, taprio_config
from topologies.emulated import switch_intf_name, tc_batch
from tools.emulation.lifecycle import Managed
from tools.emulation.progress import progress

__all__ = ["GateKeeper", "GatePlan", "GatesNotInPlace", "TAPRIO_HANDLE", "changes_schedule", "gate_plan",
           "install_lines", "qdisc_texts", "readback", "remove_lines", "reserved_links"]

#: taprio's handle on a gated port: its queues are the classes 100:1 (best effort) and 100:2 (reserved)
TAPRIO_HANDLE = 100
#: the skb priority (and taprio map entry) of reserved frames: their PCP
RESERVED_PRIO = RESERVED_PCP & 7
#: the schedule's rate may differ this much from the emulated one (the kbit rounding of the shaping)
RATE_TOLERANCE = 0.01
#: the longest wait for a new gate list to take over before it is read back (s)
MAX_SETTLE_S = 2.5
#: audit actions that cannot change the schedule (everything else triggers a re-apply: it is cheap)
QUIET_ACTIONS = frozenset({"start", "switch_connected", "switch_disconnected", "switch_refused", "switch_replaced",
                           "admin_token_set", "admin_token_generated", "create_tenant", "update_tenant",
                           "rotate_token"})

log = progress("gates")

Link = tuple[str, str]


def changes_schedule(event: dict[str, Any]) -> bool:
    """Whether an audit event (``/v1/events`` item) may change the schedule: all but ``QUIET_ACTIONS``."""
    return str(event.get("action")) not in QUIET_ACTIONS


def reserved_links(schedule: dict[str, Any]) -> set[Link]:
    """The directed links a reservation of ``schedule`` crosses (path and protection path)."""
    out: set[Link] = set()
    for r in schedule.get("reservations", []):
        for h in list(r.get("hops") or []) + list(r.get("protection_hops") or []):
            out.add((str(h["src"]), str(h["dst"])))
    return out


def emulated_rate_bps(topology: Any, u: str, v: str, link_scale: float | None) -> int | None:
    """The rate the emulation shapes link u->v to (as ``tc_batch``: kbit, at least 8 kbit/s), None unshaped."""
    if not link_scale:
        return None
    return max(8_000, int(topology.capacity_bps(u, v) * link_scale)) // 1000 * 1000


def delay_us(topology: Any, u: str, v: str, delay_scale: float, delayed: bool) -> int:
    """The netem delay of link u->v in the emulation (as ``tc_batch``), 0 without netem."""
    prop = int(topology.propagation_ns(u, v))
    return max(1, round(prop * delay_scale / 1000)) if delayed and prop > 0 else 0


@dataclass
class GatePlan:
    """What the gates of one schedule are: ``configs`` per gated port, ``errors`` per port not gated."""

    configs: dict[Link, TaprioConfig]
    errors: dict[Link, str]
    reserved: set[Link]


def gate_plan(schedule: dict[str, Any], topology: Any, plan: Any, *, link_scale: float | None,
              delay_scale: float = 1.0, delayed: bool = False, keep: Iterable[Link] = (),
              guard_band_bytes: int = 1522) -> GatePlan:
    """The taprio of every port of ``schedule`` that carries reservations (and of the ``keep`` ports,
    gated before: one open entry once their last reservation went), on the emulation of ``topology``
    and ``plan`` (devices ``s{dpid}-eth{port}``). The gate starts the link's netem delay later
    (module doc). A port the schedule cannot gate is in ``errors`` with a one-line reason.
    """
    reserved = reserved_links(schedule)
    ports = plan.link_ports()
    rates = {(str(l["src"]), str(l["dst"])): int(l["capacity_bps"]) for l in schedule.get("links", [])}
    configs: dict[Link, TaprioConfig] = {}
    errors: dict[Link, str] = {}
    for u, v in sorted(reserved | set(keep)):
        name = f"{u}->{v}"
        if (u, v) not in ports:
            errors[(u, v)] = f"port {name}: not a link of the emulation"
            continue
        sched_bps, emu_bps = rates.get((u, v)), emulated_rate_bps(topology, u, v, link_scale)
        if sched_bps is not None and emu_bps is not None and abs(sched_bps - emu_bps) > RATE_TOLERANCE * emu_bps:
            errors[(u, v)] = (f"port {name}: the schedule is for {sched_bps} b/s, the emulated link runs "
                              f"{emu_bps} b/s: its times do not describe this link")
            continue
        try:
            gcl = gate_control_list(schedule, u, v, reserved_tc=RESERVED_PRIO)
            shift = delay_us(topology, u, v, delay_scale, delayed) * 1000 % gcl.cycle_ns
            configs[(u, v)] = taprio_config(gcl, dev=switch_intf_name(plan.switch_name(u), ports[(u, v)]),
                                            link_bps=sched_bps or emu_bps or 0, guard_band_bytes=guard_band_bytes,
                                            base_time_ns=shift)
        except (GCLError, TaprioError) as e:
            errors[(u, v)] = str(e) if str(e).startswith("port ") else f"port {name}: {e}"
    return GatePlan(configs, errors, reserved)


def install_lines(cfg: TaprioConfig, *, fresh: bool, netem: str | None = None) -> list[str]:
    """``tc -batch`` lines putting ``cfg`` on its device. ``fresh`` (no gate there yet): also the
    ``clsact`` classifier (PCP 7 -> skb priority 7 on the reserved class's TX queue, every other frame
    priority 0 on best effort's) and, when ``netem`` is given (``"delay 1500us rate
    100000kbit limit 1000"``), that netem under each of taprio's two queues."""
    dev = cfg.dev
    argv = cfg.command()[1:]
    at = argv.index("root") + 1
    taprio = " ".join(argv[:at] + ["handle", f"{TAPRIO_HANDLE}:"] + argv[at:])
    if not fresh:
        return [taprio]
    (_, be_queue), (_, reserved_queue) = cfg.queues
    lines = [f"qdisc replace dev {dev} clsact",
             # the TX queue is set here, not left to the kernel: a frame that keeps its sender's
             # socket (veth pairs do) is sent on the queue that socket last used, whatever its priority
             f"filter replace dev {dev} egress prio 1 handle 1 protocol 802.1q flower vlan_prio {RESERVED_PRIO} "
             f"action skbedit priority {RESERVED_PRIO} queue_mapping {reserved_queue}",
             f"filter replace dev {dev} egress prio 2 handle 2 protocol all matchall "
             f"action skbedit priority 0 queue_mapping {be_queue}",
             # the emulation's HTB (or a run's) cannot be replaced by taprio in place: a fresh root
             f"qdisc del dev {dev} root", taprio]
    if netem:
        lines += [f"qdisc replace dev {dev} parent {TAPRIO_HANDLE}:{q} handle {TAPRIO_HANDLE + q}: netem {netem}"
                  for q in (1, 2)]
        # grafting a child deactivates the device, and taprio's reset cancels the timer that would put
        # the schedule in force (seen in Debian's 6.1: the list stayed pending, every gate open); the
        # same schedule given again restarts it
        lines.append(taprio)
    return lines


def netem_args(topology: Any, u: str, v: str, *, link_scale: float | None, delay_scale: float,
               delayed: bool) -> str | None:
    """The ``netem`` arguments that carry link u->v's delay and rate under its gate (None: neither)."""
    us = delay_us(topology, u, v, delay_scale, delayed)
    rate = emulated_rate_bps(topology, u, v, link_scale)
    parts = ([f"delay {us}us"] if us else []) + ([f"rate {rate // 1000}kbit"] if rate else [])
    if not parts:
        return None
    bdp_pkts = 2 * (rate or topology.capacity_bps(u, v)) * max(us, 1) / 1e6 / (1500 * 8)
    return " ".join(parts + [f"limit {max(1000, int(bdp_pkts) + 1)}"])


def remove_lines(devs: Iterable[str]) -> list[str]:
    """``tc -batch`` lines taking the gates (root taprio and the classifier) off ``devs``."""
    return [line for dev in devs for line in (f"qdisc del dev {dev} root", f"qdisc del dev {dev} clsact")]


def qdisc_texts(show: str) -> dict[str, str]:
    """``tc qdisc show`` output (all devices) split per device: the text of each device's root taprio."""
    out: dict[str, str] = {}
    chunk: list[str] = []

    def close() -> None:
        words = " ".join(chunk).split()
        if len(words) > 3 and words[1] == "taprio" and "dev" in words and "root" in words:
            out[words[words.index("dev") + 1]] = "\n".join(chunk)

    for line in show.splitlines():
        if line.startswith("qdisc "):
            close()
            chunk = [line]
        elif chunk:
            chunk.append(line)
    close()
    return out


def readback(configs: dict[Link, TaprioConfig], show: str) -> dict[Link, list[str]]:
    """Per gated port, the differences between its config and what ``tc qdisc show`` holds ([]: equal)."""
    shown = qdisc_texts(show)
    out: dict[Link, list[str]] = {}
    for link, cfg in configs.items():
        text = shown.get(cfg.dev)
        if text is None:
            out[link] = [f"{cfg.dev}: no taprio qdisc installed"]
            continue
        try:
            shown_cfg = parse_taprio_show(text)
        except TaprioError as e:
            out[link] = [f"{cfg.dev}: {e}"]
            continue
        out[link] = compare(cfg, shown_cfg)
        if shown_cfg["admin"] is not None and not shown_cfg["entries"]:
            # with no schedule in force taprio opens every gate: equal lists are not enough
            out[link].append(f"{cfg.dev}: no schedule in force (the list is pending: every gate open)")
    return out


# ----- the keeper (runs tc, talks to the controller) ---------------------------------------------------------

class GatesNotInPlace(RuntimeError):
    """The gates a run needs did not come up equal to the schedule in time (``GateKeeper.wait_gated``)."""


class GateKeeper(Managed):
    """Keeps the gates of a running ``emu`` (``tools.emulation.network.Emulation``) equal to the schedule
    of the controller ``client`` (``tools.client.ApiClient``, admin token: it reads every reservation).

    ``start()`` applies the gates and starts a thread that polls ``/v1/events`` every ``poll_s`` and
    re-applies after each change; ``sync()`` does one such round now (tests, scripts). ``stop()`` ends the
    thread (the gates stay); ``ungate()`` takes them off. ``summary()`` is the report.
    """

    def __init__(self, emu: Any, client: Any, *, guard_band_bytes: int = 1522, poll_s: float = 0.5,
                 say: Callable[[str], None] = log, run: Callable[..., Any] = subprocess.run,
                 sleep: Callable[[float], None] = time.sleep):
        self.emu, self.client, self.guard_band_bytes, self.poll_s = emu, client, guard_band_bytes, poll_s
        self.say, self._run, self._sleep = say, run, sleep
        self.installed: dict[Link, TaprioConfig] = {}
        self.errors: dict[Link, str] = {}
        self.reserved: set[Link] = set()
        self.differences: dict[Link, list[str]] = {}
        self.applies = self.readbacks = self.differences_seen = 0
        self.since = 0
        self.last_apply_s: float | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.thread_error: str | None = None

    # -- lifecycle --
    def start(self) -> "GateKeeper":
        self.since = self._last_seq()
        self.apply()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gatekeeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - the controller may be gone at tear-down; say it once
                if self.thread_error is None:
                    self.say(f"cannot follow the controller's events: {type(e).__name__}: {e}")
                self.thread_error = f"{type(e).__name__}: {e}"

    # -- one round --
    def _events(self, since: int) -> tuple[list[dict[str, Any]], int]:
        body = self.client.get("/v1/events", {"since": since, "limit": 1000})
        return list(body.get("events", [])), int(body.get("next", since))

    def _last_seq(self) -> int:
        since = 0
        while True:
            events, nxt = self._events(since)
            if not events or nxt == since:
                return since
            since = nxt

    def sync(self) -> bool:
        """Read the events since the last round; re-apply when one may change the schedule. True if applied."""
        with self._lock:
            changed = False
            while True:
                events, nxt = self._events(self.since)
                changed |= any(changes_schedule(e) for e in events)
                if not events or nxt == self.since:
                    break
                self.since = nxt
            if changed:
                self.apply()
            return changed

    def apply(self, force: bool = False) -> dict[Link, list[str]]:
        """Fetch the schedule, (re-)install the ports whose gates changed (all with ``force``), read every
        gated port back; returns the differences per port (logged and counted)."""
        with self._lock:
            t0 = time.monotonic()
            emu = self.emu
            schedule = self.client.schedule()
            plan = gate_plan(schedule, emu.topology, emu.plan, link_scale=emu.link_scale if emu.shaped else None,
                             delay_scale=emu.delay_scale, delayed=emu.delayed, keep=self.installed,
                             guard_band_bytes=self.guard_band_bytes)
            lines: list[str] = []
            for link, cfg in plan.configs.items():
                old = self.installed.get(link)
                if old == cfg and not force and not self.differences.get(link):
                    continue
                fresh = old is None or bool(self.differences.get(link))
                lines += install_lines(cfg, fresh=fresh, netem=netem_args(
                    emu.topology, *link, link_scale=emu.link_scale if emu.shaped else None,
                    delay_scale=emu.delay_scale, delayed=emu.delayed))
            for link, err in plan.errors.items():
                if self.errors.get(link) != err:
                    self.say(f"not gated: {err}")
            if lines:
                # -force: 'qdisc del' of a root that is not there must not stop the batch; the read-back judges
                self._run(["tc", "-force", "-batch", "-"], input="".join(l + "\n" for l in lines),
                          capture_output=True, text=True, timeout=120)
                # a new list takes over at the next cycle boundary: read back after one cycle
                self._sleep(min(MAX_SETTLE_S, 1.2e-9 * max(c.cycle_ns for c in plan.configs.values())) + 0.05)
            self.installed = dict(plan.configs)
            self.errors, self.reserved = dict(plan.errors), set(plan.reserved)
            self.applies += 1
            diffs = self.check()
            self.last_apply_s = round(time.monotonic() - t0, 3)
            return diffs

    def check(self) -> dict[Link, list[str]]:
        """Read every gated port back and compare it with its schedule; differences are logged and counted."""
        with self._lock:
            res = self._run(["tc", "qdisc", "show"], capture_output=True, text=True, timeout=60)
            self.differences = {k: d for k, d in readback(self.installed, res.stdout).items() if d}
            self.readbacks += 1
            for (u, v), d in self.differences.items():
                self.differences_seen += 1
                self.say(f"port {u}->{v} ({self.installed[(u, v)].dev}) differs from the schedule: {'; '.join(d[:3])}"
                         + (f" (+{len(d) - 3} more)" if len(d) > 3 else ""))
            return dict(self.differences)

    def wait_gated(self, links: Iterable[str], timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until every port in ``links`` (``"u->v"``) is gated and every gated port reads back equal
        to the schedule (a ``sync`` round each half second); returns the summary. Raises ``GatesNotInPlace``
        when that has not happened within ``timeout_s``: traffic that is measured against the gates must
        not start before them. A port that read back different is installed afresh in the next round."""
        want = set(links)
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.sync() and self.differences:
                self.apply()
            s = self.summary()
            if want <= set(s["gated"]) and s["readback_equal"]:
                return s
            if time.monotonic() > deadline:
                raise GatesNotInPlace(f"gates not in place after {timeout_s:g} s: missing {sorted(want - set(s['gated']))}"
                                      f", differences {s['differences']}, errors {s['errors']}")
            self._sleep(0.5)

    def stats(self) -> str:
        """``tc -s qdisc show`` of every gated port (counters and backlogs of taprio and the netem under
        each of its queues), for the run's record."""
        with self._lock:
            devs = sorted({cfg.dev for cfg in self.installed.values()})
        out = []
        for dev in devs:
            res = self._run(["tc", "-s", "qdisc", "show", "dev", dev], capture_output=True, text=True, timeout=60)
            out.append(f"# {dev}\n{res.stdout}")
        return "".join(out)

    def ungate(self) -> None:
        """Take the gates off every port and give it back the emulation's own shaping (``tc_batch``)."""
        with self._lock:
            devs = {cfg.dev for cfg in self.installed.values()}
            emu = self.emu
            batch = tc_batch(emu.topology, emu.plan, link_scale=emu.link_scale if emu.shaped else None,
                             delay_scale=emu.delay_scale, delay=emu.delayed)
            own = [l for l in batch.splitlines() if len(l.split()) > 3 and l.split()[3] in devs]
            self._run(["tc", "-force", "-batch", "-"], input="".join(l + "\n" for l in remove_lines(sorted(devs)) + own),
                      capture_output=True, text=True, timeout=120)
            self.installed, self.differences = {}, {}

    def summary(self) -> dict[str, Any]:
        """The report: ports gated (carrying reservations) and open (gated before), read-back result, counts."""
        with self._lock:
            gated = sorted(f"{u}->{v}" for u, v in self.installed if (u, v) in self.reserved)
            open_ = sorted(f"{u}->{v}" for u, v in self.installed if (u, v) not in self.reserved)
            return {"enabled": True, "ports_gated": len(gated), "ports_open": len(open_), "gated": gated,
                    "open": open_, "errors": {f"{u}->{v}": e for (u, v), e in sorted(self.errors.items())},
                    "applies": self.applies, "readbacks": self.readbacks,
                    "readback_equal": not self.differences, "all_gated": not self.errors,
                    "differences": {f"{u}->{v}": d for (u, v), d in sorted(self.differences.items())},
                    "differences_seen": self.differences_seen, "events_seq": self.since,
                    "last_apply_s": self.last_apply_s, "guard_band_bytes": self.guard_band_bytes,
                    "thread_error": self.thread_error}
