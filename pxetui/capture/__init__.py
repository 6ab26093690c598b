"""Watching the wire: BPF filter, sniffer, decoding, pcap files and the capture service."""
