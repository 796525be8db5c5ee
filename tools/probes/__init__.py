"""Packets as evidence: the probe format, the slotted talker, capture, isolation probes, the pcap
analyzer and its reports."""
